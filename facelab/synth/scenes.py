"""Scenes: one image with 0..K faces of different sizes and their ground-truth boxes.

Used to test face detection (MTCNN through :mod:`facelab.faces`): every face box is
known, faces never overlap, and people lower in the picture are drawn in front.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8
from facelab.synth.camera import apply_camera, render_background
from facelab.synth.people import Person, sample_person
from facelab.synth.render import paint_face

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """An RGB ``(height, width, 3)`` uint8 image with one box, person and emotion per face."""

    image: np.ndarray
    boxes: list[Box]
    people: list[Person]
    emotions: list[str]


def _head_region(cx: float, cy: float, h: float) -> Box:
    """Space a head takes (hair, ears, hat) around a nominal face box of height h
    centred at (cx, cy)."""
    return (cx - 0.8 * h, cy - 1.12 * h, cx + 0.8 * h, cy + 0.62 * h)


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_scene(rng: np.random.Generator, *, n_faces: int, width: int = 640, height: int = 480,
                 face_px: tuple[int, int] = (48, 160), seed_people: int = 0) -> Scene:
    """A cluttered scene with up to ``n_faces`` non-overlapping faces (RGB uint8).

    Face-box heights are drawn from ``face_px``; people come from world ``seed_people``
    with random ids.  If a face cannot be placed without overlapping the others after
    many tries it is left out, so ``len(scene.boxes)`` may be smaller than ``n_faces``
    (it is never larger).
    """
    if not isinstance(n_faces, (int, np.integer)) or n_faces < 0:
        raise InvalidInputError(f"n_faces={n_faces!r} must be a non-negative int")
    lo, hi = int(face_px[0]), int(face_px[1])
    if not 8 <= lo <= hi:
        raise InvalidInputError(f"face_px={face_px!r} must be (min, max) pixels with 8 <= min <= max")
    canvas = render_background(rng, int(width), int(height))
    placed: list[tuple[float, float, float, Box]] = []
    log_lo = np.log(lo)
    for _ in range(int(n_faces)):
        for attempt in range(60):
            # later attempts try smaller faces, so crowded scenes still fill up
            log_hi = np.log(hi) - (np.log(hi) - log_lo) * attempt / 60
            h = float(np.exp(rng.uniform(log_lo, max(log_hi, log_lo))))
            h = min(h, height / 1.8, width / 1.7)
            cx = float(rng.uniform(0.8 * h, width - 0.8 * h))
            cy = float(rng.uniform(1.12 * h, height - 0.62 * h))
            region = _head_region(cx, cy, h)
            if not any(_overlaps(region, p[3]) for p in placed):
                placed.append((cx, cy, h, region))
                break
    # paint in order of the face bottom: a later person's shoulders then start below
    # every earlier face, so no face is ever covered
    placed.sort(key=lambda p: p[1] + 0.62 * p[2])
    boxes, people, emotions = [], [], []
    for cx, cy, h, _ in placed:
        person = sample_person(seed_people, int(rng.integers(0, 100_000)))
        emotion = EMOTIONS_8[int(rng.integers(len(EMOTIONS_8)))]
        age = float(rng.uniform(3, 90))
        box = paint_face(canvas, person, age=age, emotion=emotion, intensity=float(rng.uniform(0.3, 1.0)),
                         center=(cx, cy), face_height=h, yaw=float(np.clip(rng.normal(0, 12), -30, 30)),
                         roll=float(np.clip(rng.normal(0, 6), -15, 15)),
                         light_gain=float(rng.uniform(0.8, 1.2)), light_dir=float(rng.uniform(-1, 1)),
                         glasses=bool(rng.uniform() < 0.12), hat=bool(rng.uniform() < 0.08), rng=rng)
        boxes.append(box)
        people.append(person)
        emotions.append(emotion)
    image = apply_camera(np.asarray(canvas), blur=float(rng.uniform(0, 0.8)), noise=float(rng.uniform(0, 0.02)),
                         rng=rng)
    return Scene(image=image, boxes=boxes, people=people, emotions=emotions)
