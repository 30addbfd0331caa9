"""The AFEW layout: ``Train/<Angry|Disgust|Fear|Happy|Neutral|Sad|Surprise>/000000001.avi``
and ``Val/...``, single-person clips (:func:`facelab.synth.clips.render_single_clip`).
"""
from __future__ import annotations

import functools
from pathlib import Path

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.synth.clips import render_single_clip
from facelab.synth.encoding import write_clip
from facelab.synth.items import (PERSON_ID_BASE, cached_person, check_count, item_rng, plan_rng, prepare_root,
                                 run_items, write_meta)

#: The split folders; each holds one folder per emotion (``labels.AFEW_FOLDERS``).
SPLITS = ("Train", "Val")


def _render_single(item: dict, *, seed: int, dataset: str, root: str, size: int, n_frames: int,
                   fps: int) -> dict:
    rng = item_rng(seed, dataset, item["index"])
    person = cached_person(seed, item["person_id"])
    frames = render_single_clip(person, item["emotion"], n_frames=n_frames, size=size, age=item["age"],
                                rng=rng)
    n = write_clip(Path(root) / item["rel"], frames, fps)
    return {"rel": item["rel"], "frames": n, "person_id": person.person_id, "name": person.name,
            "gender": person.gender, "race": person.race}


def write_afew(root, *, n_train_per_class: int = 8, n_val_per_class: int = 4, n_frames: int = 30, fps: int = 15,
               size: int = 96, ext: str = ".avi", seed: int = 0, workers=None, progress=True) -> dict:
    """AFEW-like single-person clips: ``Train/<Angry|Disgust|Fear|Happy|Neutral|Sad|Surprise>/
    000000001.avi`` and ``Val/...``; the expression of each clip rises to an apex and
    falls back (:func:`facelab.synth.clips.render_single_clip`)."""
    n_train_per_class = check_count(n_train_per_class, "n_train_per_class")
    n_val_per_class = check_count(n_val_per_class, "n_val_per_class", 0)
    n_frames = check_count(n_frames, "n_frames")
    if ext not in (".avi", ".mp4"):
        raise InvalidInputError(f"ext={ext!r} must be '.avi' or '.mp4'")
    root = prepare_root(root)
    rng = plan_rng(seed, "afew")
    items = []
    for split, per_class in zip(SPLITS, (n_train_per_class, n_val_per_class)):
        for emotion in L.EMOTIONS_7:
            for _ in range(per_class):
                index = len(items)
                items.append({"index": index, "split": split, "emotion": emotion,
                              "rel": f"{split}/{L.AFEW_FOLDERS[emotion]}/{index + 1:09d}{ext}",
                              "person_id": PERSON_ID_BASE["afew"] + index,
                              "age": round(float(rng.uniform(16, 70)), 1)})
    fn = functools.partial(_render_single, seed=int(seed), dataset="afew", root=str(root), size=int(size),
                           n_frames=int(n_frames), fps=int(fps))
    results = run_items(fn, items, workers=workers, progress=progress, desc="synth afew", unit="clip")
    rows = [{"file": r["rel"], "person_id": r["person_id"], "name": r["name"], "gender": r["gender"],
             "race": r["race"], "age": it["age"], "emotion": it["emotion"], "frames": r["frames"]}
            for it, r in zip(items, results)]
    write_meta(root, rows, ("file", "person_id", "name", "gender", "race", "age", "emotion", "frames"))
    return {"dataset": "afew", "root": str(root), "clips": len(items),
            "frames": sum(r["frames"] for r in results)}
