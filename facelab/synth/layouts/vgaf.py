"""The VGAF layout: ``Train/<k>_1.mp4`` + ``Train_labels.txt`` (header ``Vid_name Label``,
codes 1 Positive, 2 Neutral, 3 Negative), and ``Val/...``; group clips
(:func:`facelab.synth.clips.render_group_clip`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from facelab import labels as L
from facelab.synth.clips import render_group_clip
from facelab.synth.encoding import write_clip
from facelab.synth.items import (PERSON_ID_BASE, cached_person, check_count, item_rng, plan_rng, prepare_root,
                                 run_items, write_meta)

#: The split folders, and the label file beside each (LABELS_HEADER, then ``<clip> <code>`` lines).
SPLITS = ("Train", "Val")
LABELS_FILE = "{split}_labels.txt"
LABELS_HEADER = "Vid_name Label"


def _render_group(item: dict, *, seed: int, dataset: str, root: str, size: int, n_frames: int,
                  fps: int) -> dict:
    rng = item_rng(seed, dataset, item["index"])
    people = [cached_person(seed, pid) for pid in item["person_ids"]]
    frames = render_group_clip(people, item["emotions"], n_frames=n_frames, height=size, ages=item["ages"],
                               rng=rng)
    n = write_clip(Path(root) / item["rel"], frames, fps)
    return {"rel": item["rel"], "frames": n}


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
    n_train = check_count(n_train, "n_train")
    n_val = check_count(n_val, "n_val", 0)
    n_frames = check_count(n_frames, "n_frames")
    root = prepare_root(root)
    rng = plan_rng(seed, "vgaf")
    codes = {name: code for code, name in L.VGAF_CODES.items()}
    items, next_pid = [], PERSON_ID_BASE["vgaf"]
    for split, count in zip(SPLITS, (n_train, n_val)):
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
    results = run_items(fn, items, workers=workers, progress=progress, desc="synth vgaf", unit="clip")
    for split in SPLITS:
        lines = [LABELS_HEADER] + [f"{Path(it['rel']).stem} {codes[it['label']]}"
                                      for it in items if it["split"] == split]
        (root / LABELS_FILE.format(split=split)).write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"file": it["rel"], "label": it["label"], "emotions": " ".join(it["emotions"]),
             "person_ids": " ".join(map(str, it["person_ids"])), "frames": r["frames"]}
            for it, r in zip(items, results)]
    write_meta(root, rows, ("file", "label", "emotions", "person_ids", "frames"))
    return {"dataset": "vgaf", "root": str(root), "clips": len(items),
            "frames": sum(r["frames"] for r in results)}
