"""Items of a generated dataset: each item's random generator, the worker pool that
renders items in order, fixed-option JPEGs, the photo worker the photo layouts share,
and the ``facelab_meta.csv`` of true factors.

Every writer is **deterministic**: item ``i`` of dataset ``d`` draws all of its
randomness from its own generator ``numpy.random.SeedSequence([seed, crc32(d), i])``
(:func:`item_rng`), so the files are byte-identical whatever the number of worker
processes.  People of different datasets never overlap: each dataset draws its people
from its own range of person ids (:data:`PERSON_ID_BASE`) of the world ``seed``.
"""
from __future__ import annotations

import csv
import functools
import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.parallel import check_workers
from facelab.synth.people import sample_person
from facelab.synth.render import render_face, sample_nuisance

#: First person id of each dataset's people (world ``seed``); ranges never overlap.
PERSON_ID_BASE = {"vggface2/train": 0, "vggface2/test": 100_000, "lfw": 200_000,
                  "utkface": 1_000_000, "affectnet/train": 2_000_000, "affectnet/val": 2_500_000,
                  "afew": 3_000_000, "vgaf": 4_000_000}
#: The true factors of every file of a dataset (readers ignore it).
META_FILE = "facelab_meta.csv"


# --- determinism ----------------------------------------------------------------------------


def item_rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``dataset`` (independent of worker count)."""
    key = zlib.crc32(dataset.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key, int(index)]))


def plan_rng(seed: int, dataset: str) -> np.random.Generator:
    """The generator that plans a dataset (who, which label, which age) in the main process."""
    return item_rng(seed, dataset + "/plan", 0)


@functools.lru_cache(maxsize=4096)
def cached_person(seed: int, person_id: int):
    """Person ``person_id`` of world ``seed`` (:func:`~facelab.synth.people.sample_person`), cached per process."""
    return sample_person(int(seed), int(person_id))


def save_jpeg(path, image: np.ndarray, quality: int) -> None:
    """Save an RGB uint8 array as a baseline JPEG with fixed options (reproducible bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(
        buf, "JPEG", quality=int(quality), optimize=False, progressive=False, subsampling=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def run_items(fn, items, *, workers, progress, desc, unit="img"):
    """``[fn(item) for item in items]`` on a process pool, in order, with a progress bar."""
    from tqdm.auto import tqdm

    workers = check_workers(workers)
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


def prepare_root(root) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name}={value!r} must be an int >= {minimum}")
    return int(value)


def check_size(size, minimum=16):
    size = check_count(size, "size", minimum)
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


# --- the photo worker (module level, so that it pickles) -----------------------------------


def render_photo(item: dict, *, seed: int, dataset: str, root: str, size: int) -> dict:
    """Render and save one photo; returns what the index files need (name, box, person)."""
    rng = item_rng(seed, dataset, item["index"])
    person = cached_person(seed, item["person_id"])
    nuisance = sample_nuisance(rng, item.get("level", 1.0))
    face = render_face(person, age=item["age"], emotion=item["emotion"], intensity=item["intensity"],
                       nuisance=nuisance, size=size, rng=rng)
    rel = item["rel"].format(name=person.name, gender=person.gender, race=person.race)
    save_jpeg(Path(root) / rel, face.image, nuisance.jpeg_quality)
    return {"rel": rel, "box": face.box, "person_id": person.person_id, "name": person.name,
            "gender": person.gender, "race": person.race}


def write_meta(root: Path, rows: list[dict], columns) -> None:
    with open(root / META_FILE, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})


PHOTO_META = ("file", "person_id", "name", "gender", "race", "age", "emotion", "intensity")


def photo_rows(items, results):
    return [{"file": r["rel"], "person_id": r["person_id"], "name": r["name"], "gender": r["gender"],
             "race": r["race"], "age": it["age"], "emotion": it["emotion"], "intensity": it["intensity"]}
            for it, r in zip(items, results)]


def render_photos(items, *, seed, dataset, root, size, workers, progress):
    fn = functools.partial(render_photo, seed=int(seed), dataset=dataset, root=str(root), size=int(size))
    return run_items(fn, items, workers=workers, progress=progress, desc=f"synth {dataset}")


def load_meta(root) -> list[dict]:
    """The true factors of every file of a generated dataset (``facelab_meta.csv``)."""
    with open(Path(root) / META_FILE, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
