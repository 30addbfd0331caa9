"""The detection-scene layout: ``images/000001.jpg`` and ``boxes.json``
(``{file: [[x1, y1, x2, y2], ...]}``, the true face boxes).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from facelab.synth.items import check_count, check_size, item_rng, prepare_root, run_items, save_jpeg, write_meta
from facelab.synth.scenes import render_scene

#: The image folder and the box file beside it.
IMAGES_FOLDER = "images"
BOXES_FILE = "boxes.json"


def _render_scene_item(item: dict, *, seed: int, dataset: str, root: str, size: int,
                       max_faces: int) -> dict:
    rng = item_rng(seed, dataset, item["index"])
    width, height = size, int(round(size * 3 / 4))
    n_faces = int(rng.integers(0, max_faces + 1))
    scene = render_scene(rng, n_faces=n_faces, width=width, height=height,
                         face_px=(min(32, height // 4), max(min(32, height // 4), int(height * 0.45))),
                         seed_people=int(seed))
    save_jpeg(Path(root) / item["rel"], scene.image, 92)
    return {"rel": item["rel"], "boxes": [list(map(float, b)) for b in scene.boxes],
            "emotions": list(scene.emotions), "person_ids": [p.person_id for p in scene.people]}


def write_scenes(root, *, n: int = 50, size: int = 320, max_faces: int = 4, seed: int = 0, workers=None,
                 progress=True) -> dict:
    """Detection scenes: ``images/000001.jpg`` (``size`` x ``3/4 size`` pixels, 0..``max_faces``
    faces) and ``boxes.json`` ``{file: [[x1, y1, x2, y2], ...]}`` with the true face boxes."""
    n = check_count(n, "n")
    size = check_size(size, 64)
    root = prepare_root(root)
    items = [{"index": i, "rel": f"{IMAGES_FOLDER}/{i + 1:06d}.jpg"} for i in range(n)]
    fn = functools.partial(_render_scene_item, seed=int(seed), dataset="scenes", root=str(root), size=int(size),
                           max_faces=int(max_faces))
    results = run_items(fn, items, workers=workers, progress=progress, desc="synth scenes")
    boxes = {Path(r["rel"]).name: [[round(v, 2) for v in b] for b in r["boxes"]] for r in results}
    (root / BOXES_FILE).write_text(json.dumps(boxes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rows = [{"file": r["rel"], "face": k, "box": " ".join(f"{v:.2f}" for v in b), "emotion": e, "person_id": p}
            for r in results for k, (b, e, p) in enumerate(zip(r["boxes"], r["emotions"], r["person_ids"]))]
    write_meta(root, rows, ("file", "face", "box", "emotion", "person_id"))
    return {"dataset": "scenes", "root": str(root), "images": n, "faces": sum(len(b) for b in boxes.values())}
