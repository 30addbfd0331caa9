"""The parametric face renderer of the built-in face world (numpy + PIL, RGB).

A face is drawn from three independent groups of factors:

* **identity** -- a :class:`~facelab.synth.people.Person` and its fixed traits;
* **state** -- age in years (1..100) and an expression: one of the 8 AffectNet
  emotions, drawn through *facial action controls* (brow raise / lower, lid raise /
  tighten, nose wrinkle, lip-corner pull / depress, lip stretch, jaw drop ...) scaled
  by an ``intensity`` in [0, 1];
* **nuisance** -- yaw, roll, scale and position, lighting, background clutter,
  glasses and hats, blur and noise (:class:`Nuisance`).

The modules behind it, in drawing order: :mod:`~facelab.synth.expressions` (the
expression table), :mod:`~facelab.synth.shape` (identity + age + expression -> face
shape), :mod:`~facelab.synth.pen` (a display list in face coordinates: a head turn
(yaw) moves each point by its depth, ``x' = x cos(yaw) + z sin(yaw)``, a tilt (roll)
rotates the result), :mod:`~facelab.synth.parts` and :mod:`~facelab.synth.hair` (the
parts, back to front) and :mod:`~facelab.synth.camera` (light, background, blur and
noise).  :func:`paint_face` records the parts, projects them in one numpy batch, draws
them with PIL on a supersampled patch (3x for faces under 40 px, 2x under 100 px, else
1x), reduces it with a box filter and pastes it onto the canvas; light and the soft
modelling of the face (highlights and shade) are smooth numpy fields applied inside
the person's and the skin's silhouettes.

Everything is deterministic: no global random state, no clock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from facelab.errors import InvalidInputError
from facelab.labels import MAX_AGE, MIN_AGE
from facelab.synth.camera import MODELLING, apply_camera, modelling_spots, render_background, shade
from facelab.synth.expressions import CONTROLS, EXPRESSIONS, expression_controls
from facelab.synth.hair import draw_back_hair, draw_beard, draw_front_hair, draw_moustache
from facelab.synth.parts import (
    draw_body,
    draw_brows,
    draw_ears,
    draw_eyes,
    draw_glasses,
    draw_hat,
    draw_head,
    draw_mouth,
    draw_nose,
    draw_skin_marks,
)
from facelab.synth.people import Person
from facelab.synth.pen import Pen, as_number
from facelab.synth.shape import FaceShape, face_shape, hair_colour, silhouette_x, skin_colour

Box = tuple[float, float, float, float]


# --- nuisance -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Nuisance:
    """Everything about a photo that is neither identity, age nor expression.

    yaw / roll in degrees (positive yaw turns the nose toward +x, positive roll tilts
    clockwise on screen); scale = face-box height as a fraction of the image height;
    dx, dy = face-centre offset as a fraction of the image size; light_gain multiplies
    brightness; light_dir in [-1, 1] lights the -x (negative) or +x (positive) side of
    the face; blur = Gaussian sigma in pixels of a 112-pixel image (scaled with size);
    noise = Gaussian noise std as a fraction of 255; jpeg_quality is used by the
    dataset writers when they save the photo (not by the renderer).
    """

    yaw: float = 0.0
    roll: float = 0.0
    scale: float = 0.58
    dx: float = 0.0
    dy: float = 0.0
    light_gain: float = 1.0
    light_dir: float = 0.0
    background_seed: int = 0
    glasses: bool = False
    hat: bool = False
    blur: float = 0.0
    noise: float = 0.0
    jpeg_quality: int = 95


def sample_nuisance(rng: np.random.Generator, level: float = 1.0) -> Nuisance:
    """Random photo conditions; ``level`` 0 = clean frontal studio photo, 1 = in the wild.

    At level 1: yaw ~ N(0, 13 deg) clipped to +-30, roll ~ N(0, 6 deg) clipped to +-15,
    face 45-70% of the frame height, light gain 0.72-1.28 with a side light,
    15% glasses, 10% hats, blur up to 0.7 px, noise up to 3%, JPEG quality 68-90.
    """
    lv = as_number(level)
    if not 0.0 <= lv <= 2.0:
        raise InvalidInputError(f"level={level!r} must be a number in [0, 2] (0 clean, 1 in the wild)")
    u = rng.uniform(-1.0, 1.0, 8)
    return Nuisance(
        yaw=float(np.clip(rng.normal(0.0, 13.0) * lv, -30.0, 30.0)),
        roll=float(np.clip(rng.normal(0.0, 6.0) * lv, -15.0, 15.0)),
        scale=float(0.575 + 0.125 * min(lv, 1.0) * u[0]),
        dx=float(0.05 * lv * u[1]),
        dy=float(0.04 * lv * u[2]),
        light_gain=float(1.0 + 0.28 * min(lv, 1.5) * u[3]),
        light_dir=float(min(lv, 1.0) * u[4]),
        background_seed=int(rng.integers(0, 2**31 - 1)),
        glasses=bool(rng.uniform() < 0.15 * min(lv, 1.0)),
        hat=bool(rng.uniform() < 0.10 * min(lv, 1.0)),
        blur=float(max(0.0, 0.55 * lv * (u[5] + 0.3))),
        noise=float(max(0.0, 0.02 * lv * (u[6] + 0.5))),
        jpeg_quality=int(round(90 - 22 * min(lv, 1.5) * (u[7] + 1) / 2)),
    )


# --- paint one face ---------------------------------------------------------------------------------
def _check_age(age) -> float:
    a = as_number(age)
    if not MIN_AGE - 1 <= a <= MAX_AGE + 10:
        raise InvalidInputError(f"age={age!r} must be a number of years in {MIN_AGE}..{MAX_AGE}")
    return a


# Box calibration, fitted by least squares to facenet-pytorch MTCNN boxes on 385
# rendered faces (level-1 nuisance, roll 0; see the report of tests/test_scene_detection.py).
# MTCNN puts the box top BOX_TOP x (chin - eyes) above the eyes, the bottom
# BOX_BOTTOM x (chin - eyes) below the chin (higher for children, lower for the old),
# and BOX_WIDTH x the outline half width to each side of a centre BOX_FEATURE_SHIFT of
# the way from the outline centre to the turned features.  Each is (base, child, old):
BOX_TOP = (0.652, 0.006, 0.07)
BOX_BOTTOM = (0.026, -0.143, 0.064)
BOX_WIDTH = (1.013, -0.18, 0.031)
BOX_FEATURE_SHIFT = 0.27
BOX_ROLL_GROWTH = 0.0


def _box_from_face(pen: Pen, f: FaceShape) -> Box:
    """Detector-like face box (x1, y1, x2, y2) around the turned and tilted face."""
    def coef(c):
        return c[0] + c[1] * f.child + c[2] * f.old

    span = f.chin - f.eye_y
    y_top = f.eye_y - coef(BOX_TOP) * span
    y_bot = f.chin + coef(BOX_BOTTOM) * span
    y = np.array([f.eye_y, f.nose_y, f.mouth_y])
    xl, xr = silhouette_x(pen, f, y)
    sil_c = float(np.mean((xl + xr) / 2))
    feat_c = float(pen.turn(np.array([0.0]))[0])
    cx = (1 - BOX_FEATURE_SHIFT) * sil_c + BOX_FEATURE_SHIFT * feat_c
    w = float(np.mean((xr - xl) / 2)) * coef(BOX_WIDTH)
    # a tilted face keeps an upright box of the same size around its turned centre
    px, py = pen.pixel(cx, (y_top + y_bot) / 2)
    grow = 1.0 + BOX_ROLL_GROWTH * abs(pen.sr)
    hw_px, hh_px = w * pen.s * grow, (y_bot - y_top) / 2 * pen.s * grow
    return (px - hw_px, py - hh_px, px + hw_px, py + hh_px)


def face_box(person: Person, *, age: float, emotion: str = "Neutral", intensity: float = 1.0,
             center: tuple[float, float], face_height: float, yaw: float = 0.0, roll: float = 0.0) -> Box:
    """The ground-truth face box that :func:`paint_face` returns, without drawing."""
    ctl = expression_controls(emotion, intensity, person.traits.expressiveness)
    f = face_shape(person, _check_age(age), ctl)
    return _box_from_face(Pen(float(center[0]), float(center[1]), float(face_height), yaw, roll), f)


def paint_face(canvas: Image.Image, person: Person, *, age: float, emotion: str = "Neutral",
               intensity: float = 1.0, center: tuple[float, float], face_height: float,
               yaw: float = 0.0, roll: float = 0.0, light_gain: float = 1.0, light_dir: float = 0.0,
               glasses: bool = False, hat: bool = False,
               rng: np.random.Generator | None = None) -> Box:
    """Draw one person (head, hair, ears, neck and shoulders) onto an RGB ``canvas`` in place.

    ``center`` is the nominal face-box centre and ``face_height`` the nominal
    face-box height, in canvas pixels.  ``rng`` (default: seed 0) only adds per-photo
    variation (gaze, hat and frame colour); identity, age and expression are given
    by the arguments.  Returns the ground-truth face box (x1, y1, x2, y2) in canvas
    pixels, defined like an MTCNN box (above the brows to the chin, cheek to cheek).
    """
    if not isinstance(canvas, Image.Image) or canvas.mode != "RGB":
        raise InvalidInputError("canvas must be a PIL.Image.Image in mode 'RGB'; convert it with .convert('RGB')")
    if not isinstance(person, Person):
        raise InvalidInputError(f"person must be a facelab.synth.Person, not {type(person).__name__}")
    age = _check_age(age)
    H = as_number(face_height)
    if not (H > 0 and math.isfinite(H)):
        raise InvalidInputError(f"face_height={face_height!r} must be a positive number of pixels")
    ctl = expression_controls(emotion, intensity, person.traits.expressiveness)
    f = face_shape(person, age, ctl)
    rng = rng if rng is not None else np.random.default_rng(0)
    gaze = rng.uniform(-1.0, 1.0, 2)
    hat_colour = tuple(float(v) for v in rng.uniform(30, 230, 3))
    hat_kind = int(rng.integers(2))
    tint = float(rng.uniform())

    cx, cy = float(center[0]), float(center[1])
    box = _box_from_face(Pen(cx, cy, H, yaw, roll), f)
    x0 = max(0, int(math.floor(cx - 1.35 * H)))
    x1 = min(canvas.width, int(math.ceil(cx + 1.35 * H)))
    y0 = max(0, int(math.floor(cy - 1.3 * H)))
    y1 = min(canvas.height, int(math.ceil(cy + 2.4 * H)))
    if x1 <= x0 or y1 <= y0:
        return box
    ss = 3 if H < 40 else (2 if H < 100 else 1)     # supersampling: small faces need more
    pen = Pen((cx - x0) * ss, (cy - y0) * ss, H * ss, yaw, roll)
    skin = skin_colour(person, f)
    hair = hair_colour(person, f)
    draw_back_hair(pen, person, f, age, hair)
    draw_body(pen, person, f, skin)
    draw_ears(pen, person, f, skin)
    draw_head(pen, f, skin)
    draw_skin_marks(pen, person, f, skin)
    draw_eyes(pen, person, f, skin, hair, gaze)
    draw_brows(pen, person, f)
    draw_nose(pen, f, skin)
    draw_beard(pen, person, f, age, hair, skin)
    draw_mouth(pen, person, f, skin)
    draw_moustache(pen, person, f, age, hair)
    draw_front_hair(pen, person, f, age, hair, hat)
    if hat:
        draw_hat(pen, f, hat_colour, hat_kind)
    if glasses:
        draw_glasses(pen, f, tint)
    # draw on a supersampled copy of the canvas region, so alpha blends with what is below
    patch = canvas.crop((x0, y0, x1, y1)).resize(((x1 - x0) * ss, (y1 - y0) * ss), Image.Resampling.NEAREST)
    mask = Image.new("L", patch.size, 0)
    skin_mask = Image.new("L", patch.size, 0)
    pen.flush(ImageDraw.Draw(patch, "RGBA"), ImageDraw.Draw(mask), ImageDraw.Draw(skin_mask))
    rgb = shade(np.asarray(patch.reduce(ss)), np.asarray(mask.reduce(ss)), np.asarray(skin_mask.reduce(ss)),
                x0, y0, cx, cy, H, (pen.cyaw, pen.syaw), roll, light_gain, light_dir,
                modelling_spots(f, skin) * np.float32([1, 1, 1, 1, MODELLING]))
    canvas.paste(Image.fromarray(rgb, "RGB"), (x0, y0))
    return box


# --- public: one dataset-style photo ---------------------------------------------------------------
@dataclass(frozen=True)
class RenderedFace:
    """A rendered photo (``(size, size, 3)`` uint8 RGB) and its ground-truth face box."""

    image: np.ndarray
    box: Box


def render_face(person: Person, *, age: float, emotion: str = "Neutral", intensity: float = 1.0,
                nuisance: Nuisance | None = None, size: int = 112,
                rng: np.random.Generator | None = None) -> RenderedFace:
    """A dataset-style photo of ``person``: a cluttered background and one face whose
    box height is ``nuisance.scale`` (45-70%) of the frame, so that a tight face crop
    differs from a centre crop; pose, light, glasses / hat, blur and noise applied.
    JPEG compression is left to the writers (they save with ``nuisance.jpeg_quality``).
    ``rng`` (default: seed 0) drives gaze and camera noise; the same arguments and rng
    state give byte-identical images.
    """
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise InvalidInputError(f"size={size!r} must be an int >= 16 (pixels)")
    nz = nuisance if nuisance is not None else Nuisance()
    if not isinstance(nz, Nuisance):
        raise InvalidInputError(f"nuisance must be a facelab.synth.Nuisance or None, not {type(nz).__name__}")
    rng = rng if rng is not None else np.random.default_rng(0)
    bg = render_background(np.random.default_rng(nz.background_seed), int(size), int(size))
    if nz.light_gain != 1.0:
        arr = np.asarray(bg, dtype=np.float32) * np.float32(0.5 + 0.5 * nz.light_gain)
        bg = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    center = (size * (0.5 + nz.dx), size * (0.53 + nz.dy))
    box = paint_face(bg, person, age=age, emotion=emotion, intensity=intensity, center=center,
                     face_height=nz.scale * size, yaw=nz.yaw, roll=nz.roll, light_gain=nz.light_gain,
                     light_dir=nz.light_dir, glasses=nz.glasses, hat=nz.hat, rng=rng)
    img = apply_camera(np.asarray(bg), blur=nz.blur * size / 112.0, noise=nz.noise, rng=rng)
    box = tuple(float(min(max(v, 0.0), size)) for v in box)
    return RenderedFace(image=img, box=box)


__all__ = ["Box", "CONTROLS", "EXPRESSIONS", "expression_controls", "Nuisance", "sample_nuisance", "BOX_TOP",
           "BOX_BOTTOM", "BOX_WIDTH", "BOX_FEATURE_SHIFT", "BOX_ROLL_GROWTH", "face_box", "paint_face",
           "render_background", "apply_camera", "RenderedFace", "render_face"]
