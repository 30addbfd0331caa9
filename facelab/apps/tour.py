"""``facelab tour``: the whole teaching pipeline, headless, on the built-in face world.

What ``make run`` calls.  It writes everything under ``build/tour/`` and prints where:

1. face detection with real MTCNN on a real photo (scikit-image's astronaut) and on a
   scene drawn by the face world, written out as annotated images;
2. every notebook of ``notebooks/`` executed top to bottom (nbclient) into
   ``build/tour/notebooks/`` as ``.ipynb`` and ``.html``, with a summary of the key
   figures each notebook records.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from facelab.apps.annotate import annotate
from facelab.apps.notebooks import execute_notebook
from facelab.faces import detect_faces
from facelab.paths import REPO_ROOT
from facelab.synth.scenes import render_scene


def detection_step(out: Path) -> dict:
    """Detect faces on a real photo and on a face-world scene; write annotated copies."""
    from skimage import data  # scikit-image: one of the course's tools, only for its sample photo

    out.mkdir(parents=True, exist_ok=True)
    scene = render_scene(np.random.default_rng(0), n_faces=4)
    images = {"astronaut": data.astronaut(), "face_world_scene": scene.image}
    found = {}
    for name, faces in zip(images, detect_faces(list(images.values()))):
        annotate(images[name], faces).save(out / f"{name}_detected.png")
        found[name] = len(faces)
        print(f"  {name}: {len(faces)} face(s) -> {out / (name + '_detected.png')}")
    found["face_world_scene_true"] = len(scene.boxes)
    return found


def notebook_step(out: Path, notebooks_dir: Path) -> list[dict]:
    """Execute every numbered notebook headless; return one summary row per notebook."""
    rows = []
    for nb_path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        t0 = time.perf_counter()
        row = {"notebook": nb_path.name}
        try:
            row["summary"] = execute_notebook(nb_path, out)
            row["status"] = "ok"
        except Exception as exc:  # one failing notebook must not hide the others
            row["status"] = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"  {row['notebook']}: {row['status']} in {row['seconds']} s  {row.get('summary', '')}")
        rows.append(row)
    return rows


def run_tour(out="build/tour", notebooks_dir=None) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"facelab tour -> {out.resolve()}")
    print("1. face detection (real MTCNN weights from facenet-pytorch)")
    summary = {"detection": detection_step(out / "detection")}
    notebooks_dir = Path(notebooks_dir) if notebooks_dir else REPO_ROOT / "notebooks"
    if notebooks_dir.is_dir() and any(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        print(f"2. the notebook series ({notebooks_dir}) -> {out / 'notebooks'}")
        summary["notebooks"] = notebook_step(out / "notebooks", notebooks_dir)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"summary: {out / 'summary.json'}")
    failed = [r for r in summary.get("notebooks", []) if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_tour())
