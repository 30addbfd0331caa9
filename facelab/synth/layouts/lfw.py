"""The LFW layout: ``Name_Surname/Name_Surname_0001.jpg`` with ``people.txt`` and
``pairs.txt`` (folds of matched and mismatched pairs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facelab import labels as L
from facelab.synth.items import (PERSON_ID_BASE, PHOTO_META, check_count, check_size, photo_rows, plan_rng,
                                 prepare_root, render_photos, write_meta)

#: LFW's index files beside the people's folders.
PEOPLE_FILE = "people.txt"
PAIRS_FILE = "pairs.txt"


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
    n_people = check_count(n_people, "n_people")
    size = check_size(size)
    root = prepare_root(root)
    rng = plan_rng(seed, "lfw")
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
    results = render_photos(items, seed=seed, dataset="lfw", root=root, size=size, workers=workers,
                            progress=progress)
    names = {}
    for r in results:
        names[r["person_id"]] = r["name"]
    people = [(names[PERSON_ID_BASE["lfw"] + i], int(c)) for i, c in enumerate(counts)]
    n_pairs = _write_lfw_index(root, people, rng, n_folds)
    write_meta(root, photo_rows(items, results), PHOTO_META)
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
    (root / PEOPLE_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
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
    (root / PAIRS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 2 * per_fold * n_folds
