"""Write the built-in face world in the *real* datasets' on-disk formats.

* ``vggface2``: ``train/n000001/0001_01.jpg``, ``test/...`` (other people), ``train_list.txt``,
  ``test_list.txt``, ``identity_meta.csv``; ``n`` = people in train.
* ``lfw``: ``Name_Surname/Name_Surname_0001.jpg``, ``people.txt``, ``pairs.txt``; ``n`` = people.
* ``utkface``: flat ``<age>_<gender>_<race>_<17-digit time>.jpg.chip.jpg``; ``n`` = images.
* ``affectnet``: ``train/<Class>/000001.jpg`` (AffectNet's class imbalance), ``val/<Class>/...``
  (balanced), or the official CSV layout; ``n`` = training images.
* ``afew``: ``Train/<Angry|Disgust|...>/000000001.avi``, ``Val/...``; ``n`` = training clips (all classes).
* ``vgaf``: ``Train/1_1.mp4`` + ``Train_labels.txt``, ``Val/...``; ``n`` = training clips.
* ``scenes``: ``images/000001.jpg`` + ``boxes.json`` (true face boxes); ``n`` = images.

Every writer is **deterministic**: item ``i`` of dataset ``d`` draws all of its
randomness from its own generator ``numpy.random.SeedSequence([seed, crc32(d), i])``
(:func:`item_rng`), so the files are byte-identical whatever the number of worker
processes.  JPEGs are saved with PIL at the item's ``nuisance.jpeg_quality`` with
fixed options; clips are encoded single-threaded (:mod:`facelab.synth.clips`).

People of different datasets never overlap: each dataset draws its people from
its own range of person ids (:data:`PERSON_ID_BASE`) of the world ``seed``, and
the face world gives every person id of a world a different name.

Every dataset root also holds ``facelab_meta.csv``: the true factors of each file
(person, gender, race, age, emotion, intensity) -- the ground truth the real
datasets do not have.  Readers ignore it.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.paths import data_dir

#: Bump when the files written for the same arguments change (invalidates cached datasets).
#: Format 4 changed the expression table (``expressions.EXPRESSIONS``) and so every dataset.
FORMAT_VERSION = 4  # bump whenever the renderer or a writer changes its output
#: Datasets whose output changed since FORMAT_VERSION, with their own version, so that the
#: other cached datasets stay valid.  (Under format 2, afew v3 put the apex anywhere in the
#: clip and affectnet v3 drew intensities from AFFECTNET_INTENSITY; format 4 keeps both.)
DATASET_VERSION: dict[str, int] = {}
DATASETS = ("vggface2", "lfw", "utkface", "affectnet", "afew", "vgaf", "scenes")
#: First person id of each dataset's people (world ``seed``); ranges never overlap.
PERSON_ID_BASE = {"vggface2/train": 0, "vggface2/test": 100_000, "lfw": 200_000,
                  "utkface": 1_000_000, "affectnet/train": 2_000_000, "affectnet/val": 2_500_000,
                  "afew": 3_000_000, "vgaf": 4_000_000}
#: Name of the file that marks a cached dataset as complete (written last).
COMPLETE_MARKER = ".facelab-complete"
META_FILE = "facelab_meta.csv"

#: Sizes the notebooks use (all of them together generate in about a minute on 2 cores).
NOTEBOOK_DEFAULTS = {
    "vggface2": {"n": 100, "size": 112},
    "lfw": {"n": 60, "size": 112},
    "utkface": {"n": 1500, "size": 112},
    "affectnet": {"n": 2400, "size": 112},
    "afew": {"n": 56, "size": 96},
    "vgaf": {"n": 20, "size": 128},
}


# --- determinism ----------------------------------------------------------------------------


def item_rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``dataset`` (independent of worker count)."""
    key = zlib.crc32(dataset.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key, int(index)]))


def _plan_rng(seed: int, dataset: str) -> np.random.Generator:
    """The generator that plans a dataset (who, which label, which age) in the main process."""
    return item_rng(seed, dataset + "/plan", 0)


@functools.lru_cache(maxsize=4096)
def _person(seed: int, person_id: int):
    from facelab.synth.people import sample_person

    return sample_person(int(seed), int(person_id))


def save_jpeg(path, image: np.ndarray, quality: int) -> None:
    """Save an RGB uint8 array as a baseline JPEG with fixed options (reproducible bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(
        buf, "JPEG", quality=int(quality), optimize=False, progressive=False, subsampling=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def default_workers() -> int:
    """Worker processes: the CPUs this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def _run(fn, items, *, workers, progress, desc, unit="img"):
    """``[fn(item) for item in items]`` on a process pool, in order, with a progress bar."""
    from tqdm.auto import tqdm

    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise InvalidInputError(f"workers={workers!r} must be >= 1")
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, leave=False)
    try:
        if workers == 1 or len(items) < 4:
            out = []
            for item in items:
                out.append(fn(item))
                bar.update(1)
            return out
        import multiprocessing as mp

        chunk = max(1, min(16, len(items) // (workers * 8)))
        out = []
        with mp.get_context().Pool(min(workers, len(items))) as pool:
            for result in pool.imap(fn, items, chunksize=chunk):
                out.append(result)
                bar.update(1)
        return out
    finally:
        bar.close()


def _prepare_root(root) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name}={value!r} must be an int >= {minimum}")
    return int(value)


def _check_size(size, minimum=16):
    size = _check_count(size, "size", minimum)
    return size


# --- label distributions ---------------------------------------------------------------------

_AGES = np.arange(L.MIN_AGE, L.MAX_AGE + 1)
#: A UTKFace-like age histogram: many young adults, a bump of small children, a long tail.
_UTK_AGE_WEIGHTS = (np.exp(-0.5 * ((_AGES - 28) / 8.0) ** 2)
                    + 0.35 * np.exp(-0.5 * ((_AGES - 52) / 14.0) ** 2)
                    + 1.2 * np.exp(-(_AGES - 1) / 2.5)
                    + 0.02)
_UTK_AGE_WEIGHTS = _UTK_AGE_WEIGHTS / _UTK_AGE_WEIGHTS.sum()


def sample_ages(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` ages in 1..100 years from a realistic (UTKFace-like) age distribution."""
    return rng.choice(_AGES, size=int(n), p=_UTK_AGE_WEIGHTS)


def affectnet_train_counts(n: int, min_fraction: float = 0.015) -> dict[str, int]:
    """``n`` training images split as AffectNet's training set (labels.AFFECTNET_TRAIN_COUNTS).

    Every class keeps at least ``ceil(min_fraction * n)`` images; the largest class
    (Happiness) gives up what the small classes gain.  Largest-remainder rounding,
    so the counts add up to ``n`` exactly.
    """
    total = sum(L.AFFECTNET_TRAIN_COUNTS.values())
    exact = {c: n * L.AFFECTNET_TRAIN_COUNTS[c] / total for c in L.EMOTIONS_8}
    counts = {c: int(np.floor(v)) for c, v in exact.items()}
    for c in sorted(L.EMOTIONS_8, key=lambda c: exact[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    floor = int(np.ceil(min_fraction * n))
    largest = max(counts, key=counts.get)
    for c in L.EMOTIONS_8:
        if counts[c] < floor:
            counts[largest] -= floor - counts[c]
            counts[c] = floor
    if counts[largest] < floor:
        raise InvalidInputError(f"n={n} is too small for 8 classes with {min_fraction:.1%} each")
    return counts


#: Typical (valence, arousal) of each emotion at full intensity, for the AffectNet CSV.
_VALENCE_AROUSAL = {"Neutral": (0.0, 0.0), "Happiness": (0.75, 0.35), "Sadness": (-0.65, -0.3),
                    "Surprise": (0.2, 0.75), "Fear": (-0.6, 0.7), "Disgust": (-0.65, 0.35),
                    "Anger": (-0.55, 0.65), "Contempt": (-0.4, 0.2)}
_AFFECTNET_RAW = {name: raw for raw, name in L.AFFECTNET_RAW_IDS.items()}


# --- rendering workers (module level so that they pickle) ------------------------------------


def _render_photo(item: dict, *, seed: int, dataset: str, root: str, size: int) -> dict:
    """Render and save one photo; returns what the index files need (name, box, person)."""
    from facelab.synth.render import render_face, sample_nuisance

    rng = item_rng(seed, dataset, item["index"])
    person = _person(seed, item["person_id"])
    nuisance = sample_nuisance(rng, item.get("level", 1.0))
    face = render_face(person, age=item["age"], emotion=item["emotion"], intensity=item["intensity"],
                       nuisance=nuisance, size=size, rng=rng)
    rel = item["rel"].format(name=person.name, gender=person.gender, race=person.race)
    save_jpeg(Path(root) / rel, face.image, nuisance.jpeg_quality)
    return {"rel": rel, "box": face.box, "person_id": person.person_id, "name": person.name,
            "gender": person.gender, "race": person.race}


def _render_single(item: dict, *, seed: int, dataset: str, root: str, size: int, n_frames: int,
                   fps: int) -> dict:
    from facelab.synth.clips import render_single_clip, write_clip

    rng = item_rng(seed, dataset, item["index"])
    person = _person(seed, item["person_id"])
    frames = render_single_clip(person, item["emotion"], n_frames=n_frames, size=size, age=item["age"],
                                rng=rng)
    n = write_clip(Path(root) / item["rel"], frames, fps)
    return {"rel": item["rel"], "frames": n, "person_id": person.person_id, "name": person.name,
            "gender": person.gender, "race": person.race}


def _render_group(item: dict, *, seed: int, dataset: str, root: str, size: int, n_frames: int,
                  fps: int) -> dict:
    from facelab.synth.clips import render_group_clip, write_clip

    rng = item_rng(seed, dataset, item["index"])
    people = [_person(seed, pid) for pid in item["person_ids"]]
    frames = render_group_clip(people, item["emotions"], n_frames=n_frames, height=size, ages=item["ages"],
                               rng=rng)
    n = write_clip(Path(root) / item["rel"], frames, fps)
    return {"rel": item["rel"], "frames": n}


def _render_scene_item(item: dict, *, seed: int, dataset: str, root: str, size: int,
                       max_faces: int) -> dict:
    from facelab.synth.scenes import render_scene

    rng = item_rng(seed, dataset, item["index"])
    width, height = size, int(round(size * 3 / 4))
    n_faces = int(rng.integers(0, max_faces + 1))
    scene = render_scene(rng, n_faces=n_faces, width=width, height=height,
                         face_px=(min(32, height // 4), max(min(32, height // 4), int(height * 0.45))),
                         seed_people=int(seed))
    save_jpeg(Path(root) / item["rel"], scene.image, 92)
    return {"rel": item["rel"], "boxes": [list(map(float, b)) for b in scene.boxes],
            "emotions": list(scene.emotions), "person_ids": [p.person_id for p in scene.people]}


def _write_meta(root: Path, rows: list[dict], columns) -> None:
    with open(root / META_FILE, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})


_PHOTO_META = ("file", "person_id", "name", "gender", "race", "age", "emotion", "intensity")


def _photo_rows(items, results):
    return [{"file": r["rel"], "person_id": r["person_id"], "name": r["name"], "gender": r["gender"],
             "race": r["race"], "age": it["age"], "emotion": it["emotion"], "intensity": it["intensity"]}
            for it, r in zip(items, results)]


def _render_photos(items, *, seed, dataset, root, size, workers, progress):
    fn = functools.partial(_render_photo, seed=int(seed), dataset=dataset, root=str(root), size=int(size))
    return _run(fn, items, workers=workers, progress=progress, desc=f"synth {dataset}")


# --- VGGFace2 -------------------------------------------------------------------------------


def write_vggface2(root, *, n_people: int = 100, images_per_person: int = 20, n_test_people: int | None = None,
                   size: int = 112, seed: int = 0, workers=None, progress=True) -> dict:
    """VGGFace2-like identities: ``train/n000001/0001_01.jpg`` (+ ``train_list.txt``), and
    ``test/`` with *other* people (+ ``test_list.txt``), plus ``identity_meta.csv``.

    Each person has a base age (18..70); each photo varies the expression (all 8
    emotions), its intensity, the age by up to +-3 years and the photo nuisances.
    """
    n_people = _check_count(n_people, "n_people")
    images_per_person = _check_count(images_per_person, "images_per_person")
    n_test_people = max(2, n_people // 10) if n_test_people is None else _check_count(n_test_people,
                                                                                       "n_test_people", 0)
    if max(n_people, n_test_people) > 100_000:
        raise InvalidInputError("at most 100000 people per split (their person ids must stay disjoint)")
    size = _check_size(size)
    root = _prepare_root(root)
    rng = _plan_rng(seed, "vggface2")
    items, people = [], []
    for split, count, number0 in (("train", n_people, 1), ("test", n_test_people, n_people + 1)):
        for i in range(count):
            pid = PERSON_ID_BASE[f"vggface2/{split}"] + i
            folder = f"n{number0 + i:06d}"
            people.append((folder, pid, split))
            base_age = float(rng.uniform(18, 70))
            for k in range(images_per_person):
                items.append({"index": len(items), "person_id": pid, "split": split,
                              "rel": f"{split}/{folder}/{k + 1:04d}_01.jpg",
                              "age": float(np.clip(round(base_age + rng.uniform(-3, 3), 1), 1, 100)),
                              "emotion": L.EMOTIONS_8[int(rng.integers(8))],
                              "intensity": round(float(rng.uniform(0.3, 1.0)), 3)})
    results = _render_photos(items, seed=seed, dataset="vggface2", root=root, size=size, workers=workers,
                             progress=progress)
    for split in ("train", "test"):
        lines = [r["rel"].split("/", 1)[1] for it, r in zip(items, results) if it["split"] == split]
        (root / f"{split}_list.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    by_pid = {r["person_id"]: r for r in results}
    with open(root / "identity_meta.csv", "w", newline="", encoding="utf-8") as f:
        f.write("Class_ID, Name, Sample_Num, Flag, Gender\n")
        for folder, pid, split in people:
            r = by_pid.get(pid)
            if r is not None:
                f.write(f'{folder}, "{r["name"]}", {images_per_person}, {int(split == "train")}, '
                        f'{"mf"[r["gender"]]}\n')
    _write_meta(root, _photo_rows(items, results), _PHOTO_META)
    return {"dataset": "vggface2", "root": str(root), "images": len(items),
            "train_people": n_people, "test_people": n_test_people}


# --- LFW ---------------------------------------------------------------------------------------


def _lfw_photo_counts(rng, n_people):
    """Photos per person: some people have one photo, most a few, a few many (LFW-like)."""
    counts = 2 + rng.geometric(0.4, size=n_people) - 1
    counts[rng.uniform(size=n_people) < 0.3] = 1
    return np.minimum(counts, 12)


def write_lfw(root, *, n_people: int = 60, size: int = 112, seed: int = 0, workers=None, progress=True,
              n_folds: int | None = None) -> dict:
    """LFW-like: ``Ann_Lee/Ann_Lee_0001.jpg`` with 1..12 photos per person (some only one),
    people disjoint from the VGGFace2-like set, plus ``people.txt`` and ``pairs.txt`` in
    LFW's format (folds of matched and mismatched pairs).
    """
    n_people = _check_count(n_people, "n_people")
    size = _check_size(size)
    root = _prepare_root(root)
    rng = _plan_rng(seed, "lfw")
    counts = _lfw_photo_counts(rng, n_people)
    everyday = ("Neutral", "Happiness")  # press photos: mostly neutral or smiling
    items = []
    for i, count in enumerate(counts):
        pid = PERSON_ID_BASE["lfw"] + i
        base_age = float(rng.uniform(20, 75))
        for k in range(int(count)):
            emotion = everyday[int(rng.uniform() < 0.45)] if rng.uniform() < 0.85 else \
                L.EMOTIONS_8[int(rng.integers(8))]
            items.append({"index": len(items), "person_id": pid, "rel": "{name}/{name}_" + f"{k + 1:04d}.jpg",
                          "age": float(np.clip(round(base_age + rng.uniform(-3, 3), 1), 1, 100)),
                          "emotion": emotion, "intensity": round(float(rng.uniform(0.3, 1.0)), 3)})
    results = _render_photos(items, seed=seed, dataset="lfw", root=root, size=size, workers=workers,
                             progress=progress)
    names = {}
    for r in results:
        names[r["person_id"]] = r["name"]
    people = [(names[PERSON_ID_BASE["lfw"] + i], int(c)) for i, c in enumerate(counts)]
    n_pairs = _write_lfw_index(root, people, rng, n_folds)
    _write_meta(root, _photo_rows(items, results), _PHOTO_META)
    return {"dataset": "lfw", "root": str(root), "images": len(items), "people": n_people,
            "people_with_2_photos": int((counts >= 2).sum()), "pairs": n_pairs}


def _write_lfw_index(root: Path, people, rng, n_folds):
    """people.txt (``folds``, then per fold ``count`` and ``Name<TAB>photos``) and pairs.txt
    (``folds<TAB>pairs_per_fold``, then per fold matched ``Name n1 n2`` and mismatched
    ``Name1 n1 Name2 n2`` lines)."""
    n_folds = n_folds or (10 if len(people) >= 20 else 1)
    folds = [people[f::n_folds] for f in range(n_folds)]
    lines = [f"{n_folds}"]
    for fold in folds:
        lines.append(str(len(fold)))
        lines += [f"{name}\t{count}" for name, count in fold]
    (root / "people.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    multi = [p for p in people if p[1] >= 2]
    per_fold = max(1, min(300, len(multi) // n_folds)) if multi else 0
    lines = [f"{n_folds}\t{per_fold}"]
    for _ in range(n_folds):
        for _ in range(per_fold):
            name, count = multi[int(rng.integers(len(multi)))]
            a, b = sorted(rng.choice(count, size=2, replace=False) + 1)
            lines.append(f"{name}\t{a}\t{b}")
        for _ in range(per_fold):
            i, j = rng.choice(len(people), size=2, replace=False)
            (n1, c1), (n2, c2) = people[int(i)], people[int(j)]
            lines.append(f"{n1}\t{int(rng.integers(c1)) + 1}\t{n2}\t{int(rng.integers(c2)) + 1}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 2 * per_fold * n_folds


# --- UTKFace -----------------------------------------------------------------------------------


def _utk_timestamps(rng, n):
    """``n`` distinct 17-digit UTKFace-style times ``YYYYMMDDHHMMSSmmm`` (January 2017)."""
    seen, out = set(), []
    while len(out) < n:
        day, h, m, s, ms = (int(rng.integers(3, 21)), int(rng.integers(24)), int(rng.integers(60)),
                            int(rng.integers(60)), int(rng.integers(1000)))
        ts = f"201701{day:02d}{h:02d}{m:02d}{s:02d}{ms:03d}"
        if ts not in seen:
            seen.add(ts)
            out.append(ts)
    return out


def write_utkface(root, *, n: int = 1500, size: int = 112, seed: int = 0, workers=None, progress=True) -> dict:
    """UTKFace-like flat folder ``<age>_<gender>_<race>_<time>.jpg.chip.jpg`` (UTKFace codes:
    gender 0 male / 1 female, race 0..4), one person per photo, ages 1..100 from a
    realistic distribution (:func:`sample_ages`), mostly neutral or smiling faces."""
    n = _check_count(n, "n")
    size = _check_size(size)
    root = _prepare_root(root)
    rng = _plan_rng(seed, "utkface")
    ages = sample_ages(rng, n)
    stamps = _utk_timestamps(rng, n)
    items = []
    for i in range(n):
        emotion = ("Neutral", "Happiness")[int(rng.uniform() < 0.4)] if rng.uniform() < 0.8 else \
            L.EMOTIONS_8[int(rng.integers(8))]
        items.append({"index": i, "person_id": PERSON_ID_BASE["utkface"] + i, "age": int(ages[i]),
                      "rel": f"{int(ages[i])}_{{gender}}_{{race}}_{stamps[i]}.jpg.chip.jpg",
                      "emotion": emotion, "intensity": round(float(rng.uniform(0.3, 1.0)), 3)})
    results = _render_photos(items, seed=seed, dataset="utkface", root=root, size=size, workers=workers,
                             progress=progress)
    _write_meta(root, _photo_rows(items, results), _PHOTO_META)
    return {"dataset": "utkface", "root": str(root), "images": n,
            "genders": np.bincount([r["gender"] for r in results], minlength=2).tolist(),
            "races": np.bincount([r["race"] for r in results], minlength=5).tolist()}


# --- AffectNet -----------------------------------------------------------------------------------

#: Range of the expression intensity of an AffectNet-like photo (Neutral: always 1).  AffectNet's
#: annotators label the expression a photo *shows*, so a labelled photo shows it clearly.  Format v2
#: drew from 0.35-1.0; at the low end the cue was a pixel or two at 48-64 px and a small CNN trained
#: for 3 minutes recognised 32% of photos under intensity 0.5 against 61% above 0.85 (README).
AFFECTNET_INTENSITY = (0.6, 1.0)


def write_affectnet(root, *, n_train: int = 2400, n_val_per_class: int = 50, min_fraction: float = 0.015,
                    layout: str = "folders", size: int = 112, seed: int = 0, workers=None,
                    progress=True) -> dict:
    """AffectNet-like 8-class emotion photos, one person per photo, varied intensity.

    ``layout="folders"``: ``train/<Class>/000001.jpg`` with the training set's class
    imbalance (:func:`affectnet_train_counts`) and ``val/<Class>/...`` balanced
    (``n_val_per_class`` each, as AffectNet's validation set).  ``layout="csv"``: the
    official ``Manually_Annotated_Images/<dir>/<file>.jpg`` + ``training.csv`` /
    ``validation.csv`` with raw expression ids, face boxes, valence and arousal.
    """
    n_train = _check_count(n_train, "n_train", 8)
    n_val_per_class = _check_count(n_val_per_class, "n_val_per_class", 0)
    if layout not in ("folders", "csv"):
        raise InvalidInputError(f"layout={layout!r} must be 'folders' or 'csv'")
    size = _check_size(size)
    root = _prepare_root(root)
    rng = _plan_rng(seed, "affectnet")
    train_counts = affectnet_train_counts(n_train, min_fraction)
    val_counts = {c: n_val_per_class for c in L.EMOTIONS_8}
    items = []
    for split, counts in (("train", train_counts), ("val", val_counts)):
        labels = [c for c in L.EMOTIONS_8 for _ in range(counts[c])]
        ages = sample_ages(rng, len(labels))
        for j, emotion in enumerate(labels):
            index = len(items)
            if layout == "folders":
                rel = f"{split}/{emotion}/{index:06d}.jpg"
            else:
                rel = f"Manually_Annotated_Images/{index // 500 + 1}/{index:06d}.jpg"
            intensity = 1.0 if emotion == "Neutral" else round(float(rng.uniform(*AFFECTNET_INTENSITY)), 3)
            items.append({"index": index, "split": split, "rel": rel, "emotion": emotion,
                          "person_id": PERSON_ID_BASE[f"affectnet/{split}"] + j,
                          "age": int(max(ages[j], 3)), "intensity": intensity})
    results = _render_photos(items, seed=seed, dataset="affectnet", root=root, size=size, workers=workers,
                             progress=progress)
    if layout == "csv":
        for split, name in (("train", "training.csv"), ("val", "validation.csv")):
            _write_affectnet_csv(root / name, [(it, r) for it, r in zip(items, results) if it["split"] == split],
                                 rng)
    _write_meta(root, _photo_rows(items, results), _PHOTO_META)
    return {"dataset": "affectnet", "root": str(root), "images": len(items), "layout": layout,
            "train": train_counts, "val": val_counts}


def _write_affectnet_csv(path: Path, pairs, rng):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"])
        for it, r in pairs:
            x1, y1, x2, y2 = r["box"]
            v, a = _VALENCE_AROUSAL[it["emotion"]]
            k = it["intensity"]
            v = float(np.clip(v * k + rng.normal(0, 0.08), -1, 1))
            a = float(np.clip(a * k + rng.normal(0, 0.08), -1, 1))
            w.writerow([r["rel"].split("/", 1)[1], int(round(x1)), int(round(y1)), int(round(x2 - x1)),
                        int(round(y2 - y1)), "", _AFFECTNET_RAW[it["emotion"]], f"{v:.4f}", f"{a:.4f}"])


# --- AFEW ---------------------------------------------------------------------------------------


def write_afew(root, *, n_train_per_class: int = 8, n_val_per_class: int = 4, n_frames: int = 30, fps: int = 15,
               size: int = 96, ext: str = ".avi", seed: int = 0, workers=None, progress=True) -> dict:
    """AFEW-like single-person clips: ``Train/<Angry|Disgust|Fear|Happy|Neutral|Sad|Surprise>/
    000000001.avi`` and ``Val/...``; the expression of each clip rises to an apex and
    falls back (:func:`facelab.synth.clips.render_single_clip`)."""
    n_train_per_class = _check_count(n_train_per_class, "n_train_per_class")
    n_val_per_class = _check_count(n_val_per_class, "n_val_per_class", 0)
    n_frames = _check_count(n_frames, "n_frames")
    if ext not in (".avi", ".mp4"):
        raise InvalidInputError(f"ext={ext!r} must be '.avi' or '.mp4'")
    root = _prepare_root(root)
    rng = _plan_rng(seed, "afew")
    items = []
    for split, per_class in (("Train", n_train_per_class), ("Val", n_val_per_class)):
        for emotion in L.EMOTIONS_7:
            for _ in range(per_class):
                index = len(items)
                items.append({"index": index, "split": split, "emotion": emotion,
                              "rel": f"{split}/{L.AFEW_FOLDERS[emotion]}/{index + 1:09d}{ext}",
                              "person_id": PERSON_ID_BASE["afew"] + index,
                              "age": round(float(rng.uniform(16, 70)), 1)})
    fn = functools.partial(_render_single, seed=int(seed), dataset="afew", root=str(root), size=int(size),
                           n_frames=int(n_frames), fps=int(fps))
    results = _run(fn, items, workers=workers, progress=progress, desc="synth afew", unit="clip")
    rows = [{"file": r["rel"], "person_id": r["person_id"], "name": r["name"], "gender": r["gender"],
             "race": r["race"], "age": it["age"], "emotion": it["emotion"], "frames": r["frames"]}
            for it, r in zip(items, results)]
    _write_meta(root, rows, ("file", "person_id", "name", "gender", "race", "age", "emotion", "frames"))
    return {"dataset": "afew", "root": str(root), "clips": len(items),
            "frames": sum(r["frames"] for r in results)}


# --- VGAF ---------------------------------------------------------------------------------------

#: Member emotions drawn for a group that should come out Positive / Neutral / Negative.
_GROUP_MOODS = {
    "Positive": {"Happiness": 0.7, "Surprise": 0.1, "Neutral": 0.2},
    "Neutral": {"Neutral": 0.6, "Happiness": 0.2, "Sadness": 0.1, "Anger": 0.1},
    "Negative": {"Sadness": 0.25, "Anger": 0.25, "Disgust": 0.1, "Fear": 0.1, "Contempt": 0.05,
                 "Neutral": 0.25},
}


def sample_group(rng, label: str, n_members: int) -> list[str]:
    """Member emotions whose ``labels.group_label`` is ``label`` (rejection sampling)."""
    mood = _GROUP_MOODS[label]
    names, p = list(mood), np.array(list(mood.values()))
    for _ in range(1000):
        emotions = [names[int(i)] for i in rng.choice(len(names), size=n_members, p=p / p.sum())]
        if L.group_label(emotions) == label:
            return emotions
    raise RuntimeError(f"could not draw a {label} group of {n_members}")  # pragma: no cover


def write_vgaf(root, *, n_train: int = 20, n_val: int = 10, n_frames: int = 20, fps: int = 10,
               size: int = 128, seed: int = 0, workers=None, progress=True) -> dict:
    """VGAF-like group clips: ``Train/<k>_1.mp4`` + ``Train_labels.txt`` (header
    ``Vid_name Label``, codes 1 Positive, 2 Neutral, 3 Negative), and ``Val/...``.

    Each clip shows 2..6 people; the three labels are balanced and each label comes
    from the members' emotions (``labels.group_label``).  ``size`` is the frame height
    (16:9 frames)."""
    n_train = _check_count(n_train, "n_train")
    n_val = _check_count(n_val, "n_val", 0)
    n_frames = _check_count(n_frames, "n_frames")
    root = _prepare_root(root)
    rng = _plan_rng(seed, "vgaf")
    codes = {name: code for code, name in L.VGAF_CODES.items()}
    items, next_pid = [], PERSON_ID_BASE["vgaf"]
    for split, count in (("Train", n_train), ("Val", n_val)):
        for k in range(count):
            label = L.VGAF_CLASSES[k % 3]  # balanced labels
            members = int(rng.integers(2, 7))
            emotions = sample_group(rng, label, members)
            items.append({"index": len(items), "split": split, "rel": f"{split}/{k + 1}_1.mp4", "label": label,
                          "emotions": emotions, "person_ids": list(range(next_pid, next_pid + members)),
                          "ages": [round(float(a), 1) for a in rng.uniform(12, 75, members)]})
            next_pid += members
    fn = functools.partial(_render_group, seed=int(seed), dataset="vgaf", root=str(root), size=int(size),
                           n_frames=int(n_frames), fps=int(fps))
    results = _run(fn, items, workers=workers, progress=progress, desc="synth vgaf", unit="clip")
    for split in ("Train", "Val"):
        lines = ["Vid_name Label"] + [f"{Path(it['rel']).stem} {codes[it['label']]}"
                                      for it in items if it["split"] == split]
        (root / f"{split}_labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"file": it["rel"], "label": it["label"], "emotions": " ".join(it["emotions"]),
             "person_ids": " ".join(map(str, it["person_ids"])), "frames": r["frames"]}
            for it, r in zip(items, results)]
    _write_meta(root, rows, ("file", "label", "emotions", "person_ids", "frames"))
    return {"dataset": "vgaf", "root": str(root), "clips": len(items),
            "frames": sum(r["frames"] for r in results)}


# --- scenes -------------------------------------------------------------------------------------


def write_scenes(root, *, n: int = 50, size: int = 320, max_faces: int = 4, seed: int = 0, workers=None,
                 progress=True) -> dict:
    """Detection scenes: ``images/000001.jpg`` (``size`` x ``3/4 size`` pixels, 0..``max_faces``
    faces) and ``boxes.json`` ``{file: [[x1, y1, x2, y2], ...]}`` with the true face boxes."""
    n = _check_count(n, "n")
    size = _check_size(size, 64)
    root = _prepare_root(root)
    items = [{"index": i, "rel": f"images/{i + 1:06d}.jpg"} for i in range(n)]
    fn = functools.partial(_render_scene_item, seed=int(seed), dataset="scenes", root=str(root), size=int(size),
                           max_faces=int(max_faces))
    results = _run(fn, items, workers=workers, progress=progress, desc="synth scenes")
    boxes = {Path(r["rel"]).name: [[round(v, 2) for v in b] for b in r["boxes"]] for r in results}
    (root / "boxes.json").write_text(json.dumps(boxes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rows = [{"file": r["rel"], "face": k, "box": " ".join(f"{v:.2f}" for v in b), "emotion": e, "person_id": p}
            for r in results for k, (b, e, p) in enumerate(zip(r["boxes"], r["emotions"], r["person_ids"]))]
    _write_meta(root, rows, ("file", "face", "box", "emotion", "person_id"))
    return {"dataset": "scenes", "root": str(root), "images": n, "faces": sum(len(b) for b in boxes.values())}


# --- dispatcher and cache -------------------------------------------------------------------------

WRITERS = {"vggface2": write_vggface2, "lfw": write_lfw, "utkface": write_utkface,
           "affectnet": write_affectnet, "afew": write_afew, "vgaf": write_vgaf, "scenes": write_scenes}
#: Which writer argument ``n`` sets, and the default ``size`` of each dataset.
_N_ARG = {"vggface2": "n_people", "lfw": "n_people", "utkface": "n", "affectnet": "n_train",
          "afew": None, "vgaf": "n_train", "scenes": "n"}
DEFAULT_SIZE = {"vggface2": 112, "lfw": 112, "utkface": 112, "affectnet": 112, "afew": 96, "vgaf": 128,
                "scenes": 320}


def generate(name: str, root, *, n: int | None = None, seed: int = 0, size: int | None = None, workers=None,
             progress=True, **kw) -> dict:
    """Write dataset ``name`` into ``root``; ``n`` is its main count (see the module table).

    For AFEW ``n`` is the number of training clips over all 7 classes (``n // 7`` per
    class, validation half as many); for VGAF validation gets ``n // 2`` clips.
    Extra keyword arguments go to the writer (e.g. ``images_per_person``).
    """
    if name not in WRITERS:
        raise InvalidInputError(f"unknown synthetic dataset {name!r}; choose one of {', '.join(WRITERS)}")
    args = dict(kw)
    if n is not None:
        n = _check_count(n, "n")
        if name == "afew":
            per_class = max(1, n // 7)
            args.setdefault("n_train_per_class", per_class)
            args.setdefault("n_val_per_class", max(1, per_class // 2))
        else:
            args[_N_ARG[name]] = n
            if name == "vgaf":
                args.setdefault("n_val", max(1, n // 2))
    return WRITERS[name](root, size=int(size or DEFAULT_SIZE[name]), seed=int(seed), workers=workers,
                         progress=progress, **args)


def default_data_root() -> Path:
    """Where generated datasets are cached: :func:`facelab.paths.data_dir` (``$FACELAB_DATA``,
    else ``<repo>/data/synth`` in a source checkout, else ``$FACELAB_HOME/synth``)."""
    return data_dir()


def dataset_version(name: str) -> int:
    """The format version of dataset ``name``'s files (``DATASET_VERSION``, else ``FORMAT_VERSION``)."""
    return DATASET_VERSION.get(name, FORMAT_VERSION)


def dataset_key(name: str, *, n=None, seed=0, size=None, **kw) -> str:
    """Folder name of a cached dataset: name, n, seed, size, format version (+ hash of extras)."""
    version = dataset_version(name)
    key = f"{name}-n{n if n is not None else 'default'}-s{seed}-px{size or DEFAULT_SIZE.get(name)}-v{version}"
    if kw:
        digest = zlib.crc32(json.dumps(kw, sort_keys=True, default=str).encode())
        key += f"-{digest:08x}"
    return key


def ensure_dataset(name: str, *, n=None, seed: int = 0, size=None, root=None, workers=None, progress=True,
                   **kw) -> Path:
    """Generate dataset ``name`` once into the cache and return its folder (reused afterwards).

    Generation writes into a temporary folder that is renamed into place after the
    completion marker is written, so an interrupted run is simply redone.
    ``ensure_dataset("affectnet", **NOTEBOOK_DEFAULTS["affectnet"])`` gives the notebooks' set.
    """
    if name not in WRITERS:
        raise InvalidInputError(f"unknown synthetic dataset {name!r}; choose one of {', '.join(WRITERS)}")
    base = Path(root) if root is not None else default_data_root()
    final = base / dataset_key(name, n=n, seed=seed, size=size, **kw)
    if (final / COMPLETE_MARKER).is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(base, final.name)
    tmp = base / f"{final.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    summary = generate(name, tmp, n=n, seed=seed, size=size, workers=workers, progress=progress, **kw)
    summary["root"] = str(final)
    (tmp / COMPLETE_MARKER).write_text(json.dumps(summary, sort_keys=True) + "\n", encoding="utf-8")
    if final.exists() and not (final / COMPLETE_MARKER).is_file():
        shutil.rmtree(final)  # an incomplete folder from an older version of this function
    try:
        tmp.rename(final)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / COMPLETE_MARKER).is_file():
            raise
    return final


def _remove_stale_partials(base: Path, key: str) -> None:
    """Delete ``<key>.partial-<pid>`` folders left by processes that no longer run."""
    for path in base.glob(f"{key}.partial-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


def load_meta(root) -> list[dict]:
    """The true factors of every file of a generated dataset (``facelab_meta.csv``)."""
    with open(Path(root) / META_FILE, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


__all__ = ["FORMAT_VERSION", "DATASET_VERSION", "AFFECTNET_INTENSITY", "DATASETS", "NOTEBOOK_DEFAULTS",
           "PERSON_ID_BASE", "item_rng", "save_jpeg", "sample_ages", "affectnet_train_counts", "sample_group",
           "write_vggface2", "write_lfw", "write_utkface", "write_affectnet", "write_afew", "write_vgaf",
           "write_scenes", "generate", "default_data_root", "dataset_version", "dataset_key", "ensure_dataset",
           "load_meta", "WRITERS", "DEFAULT_SIZE"]
