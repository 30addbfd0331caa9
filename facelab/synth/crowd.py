"""A moving crowd of the face world with known truth, for face tracking.

:func:`render_crowd_clip`: 5-6 people walk, turn, change expression, cross each other
and leave and re-enter the frame; every frame comes with each visible face's true box
and identity.  :func:`write_crowd_clip` writes it (:func:`facelab.synth.encoding.write_clip`)
and returns the truth.  Frames are ``H x W x 3`` uint8 RGB numpy arrays; everything is
deterministic given ``seed``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8
from facelab.synth.camera import render_background
from facelab.synth.encoding import write_clip
from facelab.synth.people import Person, sample_person
from facelab.synth.render import paint_face


#: Sprite quantisation of the crowd renderer: head turn in steps of this many degrees,
#: expression intensity in this many steps above neutral.
CROWD_YAW_STEP = 7.5
CROWD_INTENSITY_LEVELS = 3


@dataclass(frozen=True)
class CrowdFace:
    """One face of a crowd frame: ``identity`` (0-based index of the clip's person),
    ``box`` ``(x1, y1, x2, y2)`` (MTCNN-like, frame pixels, may reach outside the frame),
    ``visible`` (fraction of the box inside the frame and not hidden by people in front),
    ``emotion`` and ``intensity`` shown."""

    identity: int
    box: tuple[float, float, float, float]
    visible: float
    emotion: str
    intensity: float


class CrowdFrame(NamedTuple):
    """One crowd frame: index, time (s), the ``H x W x 3`` uint8 RGB image, and the
    :class:`CrowdFace` of every face at least partly in view (back to front)."""

    index: int
    time: float
    image: np.ndarray
    faces: tuple


@dataclass
class _Walker:
    """One person's script over normalised clip time ``u`` in [0, 1]."""

    person: Person
    age: float
    row: int
    height: float            # face height, pixels
    y: float                 # face-centre height, pixels
    home: float              # centre of the horizontal swing, fraction of the frame width
    amplitude: float         # horizontal swing, fraction of the frame width
    cycles: float
    phase: float
    yaw_amplitude: float
    yaw_cycles: float
    yaw_phase: float
    emotions: tuple          # one per expression segment
    seed: int

    def at(self, u: float, width: int) -> tuple:
        x = width * (self.home + self.amplitude * math.sin(2 * math.pi * self.cycles * u + self.phase))
        y = self.y + 0.02 * self.height * math.sin(2 * math.pi * 3 * u + self.phase)
        h = self.height * (1.0 + 0.06 * math.sin(2 * math.pi * 1.5 * u + self.yaw_phase))
        yaw = self.yaw_amplitude * math.sin(2 * math.pi * self.yaw_cycles * u + self.yaw_phase)
        k = min(int(u * len(self.emotions)), len(self.emotions) - 1)
        local = u * len(self.emotions) - k  # 0..1 within the segment: neutral -> apex -> neutral
        intensity = math.sin(math.pi * min(max(local, 0.0), 1.0)) ** 2
        return x, y, h, yaw, self.emotions[k], intensity


class _Sprite(NamedTuple):
    premultiplied: np.ndarray   # h x w x 3 uint8: colour x alpha
    alpha: np.ndarray           # h x w uint8 (255 = opaque)
    center: tuple               # the face centre, sprite pixels
    box: tuple                  # the face box, sprite pixels


def _crowd_script(n_people: int, width: int, height: int, face_height, duration: float, seed: int,
                  people) -> list:
    """Who stands where and moves how.  Motions have real-world periods (a leaver needs 20 s
    for a swing out and back on both sides), but every clip holds at least half a period, so
    that short clips still show the crossings, exits and returns."""
    rng = np.random.default_rng([int(seed), 0xC0DE])
    if people is None:
        people = [sample_person(int(seed), int(i)) for i in rng.choice(100_000, n_people, replace=False)]
    lo, hi = face_height
    rows = [i % 2 for i in range(n_people)]  # 0: back row (smaller, higher, drawn first), 1: front row
    homes = {}
    for row in (0, 1):  # home positions spread over the row, in random order
        members = [i for i in range(n_people) if rows[i] == row]
        spots = rng.permutation(len(members))
        for i, k in zip(members, spots):
            homes[i] = 0.5 if len(members) == 1 else 0.2 + 0.6 * k / (len(members) - 1)
    walkers = []
    for i, person in enumerate(people):
        h = height * float(rng.uniform(lo, hi)) * (0.82 if rows[i] == 0 else 1.0)
        y = height * ((0.30 if rows[i] == 0 else 0.56) + float(rng.uniform(-0.03, 0.03)))
        leaver = i in (0, 3)  # these two swing out of the frame on both sides and come back
        if leaver:
            amplitude, home, phase = 0.5 + 0.8 * h / width + 0.12, 0.5, 0.0
            cycles = max(0.5, duration / 20.0)
        else:
            amplitude, home, phase = float(rng.uniform(0.1, 0.22)), homes[i], float(rng.uniform(0, 2 * np.pi))
            cycles = max(0.35, duration / float(rng.uniform(8, 16)))
        walkers.append(_Walker(
            person=person, age=float(rng.uniform(18, 70)), row=rows[i], height=h, y=y, home=home,
            amplitude=amplitude, cycles=cycles, phase=phase,
            yaw_amplitude=float(rng.uniform(15, 35)), yaw_cycles=max(0.5, duration / float(rng.uniform(4, 8))),
            yaw_phase=float(rng.uniform(0, 2 * np.pi)),
            emotions=tuple(str(e) for e in rng.choice([e for e in EMOTIONS_8 if e != "Neutral"], 3)),
            seed=int(rng.integers(2**31 - 1))))
    return walkers


def _render_sprite(walker: _Walker, emotion: str, intensity: float, yaw: float, face_height: float,
                   light_gain: float, light_dir: float) -> _Sprite:
    """The person drawn once on black and once on white: the difference gives the alpha, so the
    sprite composites onto any background exactly as :func:`paint_face` would draw it there."""
    H = float(face_height)
    w, h = int(math.ceil(2.7 * H)) + 4, int(math.ceil(3.7 * H)) + 4
    cx, cy = w / 2, 1.3 * H + 2
    layers = []
    for value in (0, 255):
        canvas = Image.new("RGB", (w, h), (value,) * 3)
        box = paint_face(canvas, walker.person, age=walker.age, emotion=emotion, intensity=intensity,
                         center=(cx, cy), face_height=H, yaw=yaw, light_gain=light_gain, light_dir=light_dir,
                         rng=np.random.default_rng(walker.seed))
        layers.append(np.asarray(canvas, dtype=np.int16))
    alpha = np.clip(255 - (layers[1] - layers[0]).max(axis=2), 0, 255).astype(np.uint8)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    y0, y1, x0, x1 = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) if len(rows) else (0, 1, 0, 1)
    return _Sprite(np.ascontiguousarray(layers[0][y0:y1, x0:x1].astype(np.uint8)), alpha[y0:y1, x0:x1].copy(),
                   (cx - x0, cy - y0), (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0))


def _resize_sprite(sp: _Sprite, scale: float) -> _Sprite:
    h, w = sp.alpha.shape
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    sx, sy = nw / w, nh / h
    return _Sprite(np.asarray(Image.fromarray(sp.premultiplied).resize((nw, nh), Image.BILINEAR)),
                   np.asarray(Image.fromarray(sp.alpha).resize((nw, nh), Image.BILINEAR)),
                   (sp.center[0] * sx, sp.center[1] * sy),
                   (sp.box[0] * sx, sp.box[1] * sy, sp.box[2] * sx, sp.box[3] * sy))


def render_crowd_clip(n_people: int = 6, *, width: int = 1920, height: int = 1080, fps: int = 25,
                      duration: float = 20.0, seed: int = 0, face_height=(0.11, 0.16), noise: float = 0.01,
                      people=None) -> Iterator[CrowdFrame]:
    """Frames of a moving crowd with known truth, streamed (one frame in memory at a time).

    ``n_people`` people of the face world (``facelab.synth.sample_person``; or pass
    ``people``) stand in two rows.  Each walks left and right on a sinusoid around a home
    spot, so neighbours cross and hide each other; people 0 and 3 swing across the whole
    frame, out of it and back (a 20 s period; clips shorter than 10 s still show one swing
    out and back).  Heads turn (yaw up to 15-35 degrees) and faces change expression
    (three emotions per person, each rising from neutral to an apex and back).  Faces are
    ``face_height`` (fractions of the frame height) tall, the back row 18% smaller.

    Speed: each person is drawn once per (emotion, intensity step, yaw step) and size,
    then pasted (:data:`CROWD_YAW_STEP`, :data:`CROWD_INTENSITY_LEVELS`); camera noise
    (std ``noise`` x 255) comes from a table read at a random offset each frame.

    Yields :class:`CrowdFrame` ``(index, time, image, faces)``; ``faces`` holds every
    face whose box is at least partly in view, with its identity (``0 .. n_people - 1``),
    box and visible fraction.  Deterministic given ``seed``.
    """
    people = list(people) if people is not None else None
    n_people = len(people) if people is not None else n_people
    if isinstance(n_people, bool) or not isinstance(n_people, (int, np.integer)) or not 1 <= n_people <= 8:
        raise InvalidInputError(f"n_people={n_people!r} must be an int in 1..8")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 64 or v % 2:
            raise InvalidInputError(f"{name}={v!r} must be an even int >= 64 (pixels; yuv420p video)")
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1:
        raise InvalidInputError(f"fps={fps!r} must be an int >= 1")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration * fps >= 1):
        raise InvalidInputError(f"duration={duration!r} s must give at least one frame at {fps} fps")
    try:
        lo, hi = (float(v) for v in face_height)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not 0.02 <= lo <= hi <= 0.4:
        raise InvalidInputError(f"face_height={face_height!r} must be (min, max) fractions of the frame height "
                                "with 0.02 <= min <= max <= 0.4")
    if not (isinstance(noise, (int, float)) and 0 <= noise <= 0.2):
        raise InvalidInputError(f"noise={noise!r} must be a fraction of 255 in [0, 0.2]")
    if people is not None and not all(isinstance(p, Person) for p in people):
        raise InvalidInputError("people must be facelab.synth.Person objects (facelab.synth.sample_person)")
    width, height, fps = int(width), int(height), int(fps)
    n_frames = int(round(duration * fps))
    walkers = _crowd_script(int(n_people), width, height, (lo, hi), n_frames / fps, seed, people)
    rng = np.random.default_rng([int(seed), 0xF00D])
    background = np.asarray(render_background(rng, width, height))
    light_gain, light_dir = float(rng.uniform(0.9, 1.1)), float(rng.uniform(-0.8, 0.8))
    pad = 16
    table = (rng.standard_normal((height + pad, width + pad, 3), dtype=np.float32) * (noise * 255)).astype(np.int16) \
        if noise > 0 else None
    sprites: OrderedDict = OrderedDict()  # least recently used first; bounded (memory)
    sized: OrderedDict = OrderedDict()

    def sprite(i: int, emotion: str, level: int, yaw_step: int, h: float) -> _Sprite:
        key = (i, emotion if level else "Neutral", level, yaw_step)
        if key not in sprites:  # drawn at the largest size the person reaches, then only resized
            sprites[key] = _render_sprite(walkers[i], key[1], level / CROWD_INTENSITY_LEVELS,
                                          yaw_step * CROWD_YAW_STEP, walkers[i].height * 1.08, light_gain, light_dir)
        size_step = int(round(math.log(h) / math.log(1.02)))  # sizes in 2% steps
        skey = key + (size_step,)
        if skey not in sized:
            sized[skey] = _resize_sprite(sprites[key], 1.02 ** size_step / (walkers[i].height * 1.08))
        for cache, k, limit in ((sprites, key, 40), (sized, skey, 8)):
            cache.move_to_end(k)
            while len(cache) > limit * len(walkers):
                cache.popitem(last=False)
        return sized[skey]

    order = sorted(range(len(walkers)), key=lambda i: (walkers[i].row, walkers[i].height))  # back to front
    for k in range(n_frames):
        u = k / max(n_frames - 1, 1)
        frame = background.copy()
        placed = []  # (identity, sprite, x0, y0, box, emotion, intensity)
        for i in order:
            x, y, h, yaw, emotion, intensity = walkers[i].at(u, width)
            level = int(round(intensity * CROWD_INTENSITY_LEVELS))
            sp = sprite(i, emotion, level, int(round(yaw / CROWD_YAW_STEP)), h)
            x0, y0 = int(round(x - sp.center[0])), int(round(y - sp.center[1]))
            box = (x0 + sp.box[0], y0 + sp.box[1], x0 + sp.box[2], y0 + sp.box[3])
            _paste(frame, sp, x0, y0)
            placed.append((i, sp, x0, y0, box, emotion if level else "Neutral", level / CROWD_INTENSITY_LEVELS))
        if table is not None:
            oy, ox = (int(v) for v in rng.integers(0, pad, 2))
            noisy = frame.astype(np.int16)
            noisy += table[oy:oy + height, ox:ox + width]
            frame = np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
        faces = []
        for j, (i, _, _, _, box, emotion, intensity) in enumerate(placed):
            visible = _visible_fraction(box, placed[j + 1:], width, height)
            if visible > 0:
                faces.append(CrowdFace(i, tuple(float(v) for v in box), visible, emotion, float(intensity)))
        yield CrowdFrame(k, k / fps, frame, tuple(faces))


def _paste(frame: np.ndarray, sp: _Sprite, x0: int, y0: int) -> None:
    """Composite a premultiplied sprite onto ``frame`` in place (clipped at the borders)."""
    H, W = frame.shape[:2]
    sh, sw = sp.alpha.shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + sw, W), min(y0 + sh, H)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x0, fy0 - y0
    region = frame[fy0:fy1, fx0:fx1]
    inv = 255 - sp.alpha[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0].astype(np.uint16)[..., None]
    blended = region * inv  # uint16: at most 255 * 255
    blended += 127
    blended //= 255
    blended += sp.premultiplied[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0]
    region[...] = np.minimum(blended, 255)


def _visible_fraction(box, in_front, width: int, height: int) -> float:
    """Fraction of ``box`` that is inside the frame and not covered (alpha > 50%) by the
    sprites drawn after it."""
    x1, y1, x2, y2 = box
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    ix1, iy1 = int(math.floor(max(x1, 0))), int(math.floor(max(y1, 0)))
    ix2, iy2 = int(math.ceil(min(x2, width))), int(math.ceil(min(y2, height)))
    if ix2 <= ix1 or iy2 <= iy1:
        return 0.0
    inside = (min(x2, width) - max(x1, 0)) * (min(y2, height) - max(y1, 0))
    covered = np.zeros((iy2 - iy1, ix2 - ix1), dtype=bool)
    for _, sp, x0, y0, *_ in in_front:
        sh, sw = sp.alpha.shape
        ox1, oy1, ox2, oy2 = max(ix1, x0), max(iy1, y0), min(ix2, x0 + sw), min(iy2, y0 + sh)
        if ox2 > ox1 and oy2 > oy1:
            covered[oy1 - iy1:oy2 - iy1, ox1 - ix1:ox2 - ix1] |= sp.alpha[oy1 - y0:oy2 - y0, ox1 - x0:ox2 - x0] > 127
    free = 1.0 - covered.mean()
    return float(max(0.0, min(1.0, inside * free / area)))


def write_crowd_clip(path, n_people: int = 6, *, fps: int = 25, **kwargs) -> list:
    """Render a crowd clip (:func:`render_crowd_clip`, same arguments) straight into a video
    file (:func:`write_clip`; frames are streamed, never all in memory).

    Returns the truth: one tuple of :class:`CrowdFace` per frame.
    """
    truth: list = []

    def frames():
        for frame in render_crowd_clip(n_people, fps=fps, **kwargs):
            truth.append(frame.faces)
            yield frame.image

    write_clip(path, frames(), fps=fps)
    return truth


__all__ = ["CROWD_YAW_STEP", "CROWD_INTENSITY_LEVELS", "CrowdFace", "CrowdFrame", "render_crowd_clip",
           "write_crowd_clip"]
