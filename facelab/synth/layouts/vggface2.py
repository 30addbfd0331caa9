"""The VGGFace2 layout: ``train/n000001/0001_01.jpg`` (+ ``train_list.txt``), ``test/...``
with other people (+ ``test_list.txt``), and ``identity_meta.csv``.
"""
from __future__ import annotations

import numpy as np

from facelab import labels as L
from facelab.errors import InvalidInputError
from facelab.synth.items import (PERSON_ID_BASE, PHOTO_META, check_count, check_size, photo_rows, plan_rng,
                                 prepare_root, render_photos, write_meta)

#: The image list of a split (``n000001/0001_01.jpg`` per line), beside the split folders.
LIST_FILE = "{split}_list.txt"
#: The identity table and its header line.
IDENTITY_META = "identity_meta.csv"
IDENTITY_META_HEADER = "Class_ID, Name, Sample_Num, Flag, Gender"


def write_vggface2(root, *, n_people: int = 100, images_per_person: int = 20, n_test_people: int | None = None,
                   size: int = 112, seed: int = 0, workers=None, progress=True) -> dict:
    """VGGFace2-like identities: ``train/n000001/0001_01.jpg`` (+ ``train_list.txt``), and
    ``test/`` with *other* people (+ ``test_list.txt``), plus ``identity_meta.csv``.

    Each person has a base age (18..70); each photo varies the expression (all 8
    emotions), its intensity, the age by up to +-3 years and the photo nuisances.
    """
    n_people = check_count(n_people, "n_people")
    images_per_person = check_count(images_per_person, "images_per_person")
    n_test_people = max(2, n_people // 10) if n_test_people is None else check_count(n_test_people,
                                                                                      "n_test_people", 0)
    if max(n_people, n_test_people) > 100_000:
        raise InvalidInputError("at most 100000 people per split (their person ids must stay disjoint)")
    size = check_size(size)
    root = prepare_root(root)
    rng = plan_rng(seed, "vggface2")
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
    results = render_photos(items, seed=seed, dataset="vggface2", root=root, size=size, workers=workers,
                            progress=progress)
    for split in ("train", "test"):
        lines = [r["rel"].split("/", 1)[1] for it, r in zip(items, results) if it["split"] == split]
        (root / LIST_FILE.format(split=split)).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    by_pid = {r["person_id"]: r for r in results}
    with open(root / IDENTITY_META, "w", newline="", encoding="utf-8") as f:
        f.write(IDENTITY_META_HEADER + "\n")
        for folder, pid, split in people:
            r = by_pid.get(pid)
            if r is not None:
                f.write(f'{folder}, "{r["name"]}", {images_per_person}, {int(split == "train")}, '
                        f'{"mf"[r["gender"]]}\n')
    write_meta(root, photo_rows(items, results), PHOTO_META)
    return {"dataset": "vggface2", "root": str(root), "images": len(items),
            "train_people": n_people, "test_people": n_test_people}
