"""The parametric face renderer of the built-in face world (numpy + PIL, RGB).

A face is drawn from three independent groups of factors:

* **identity** -- a :class:`~facelab.synth.people.Person` and its fixed traits;
* **state** -- age in years (1..100) and an expression: one of the 8 AffectNet
  emotions, drawn through *facial action controls* (brow raise / lower, lid raise /
  tighten, nose wrinkle, lip-corner pull / depress, lip stretch, jaw drop ...) scaled
  by an ``intensity`` in [0, 1];
* **nuisance** -- yaw, roll, scale and position, lighting, background clutter,
  glasses and hats, blur and noise (:class:`Nuisance`).

Geometry lives in *face coordinates*: the unit is the face-box height (brows to
chin, like a detector box), the origin is the box centre, y points down and z
points out of the face toward the camera.  A head turn (yaw) moves each point by
its depth, ``x' = x cos(yaw) + z sin(yaw)``, so the far side of the face narrows;
a head tilt (roll) rotates the result.  Parts are recorded in a display list,
projected in one numpy batch, drawn with PIL on a supersampled patch (3x for faces
under 40 px, 2x under 100 px, else 1x), reduced with a box filter and pasted onto
the canvas; light and the soft modelling of the face (highlights and shade) are
smooth numpy fields applied inside the person's and the skin's silhouettes.

Everything is deterministic: no global random state, no clock.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8, MAX_AGE, MIN_AGE
from facelab.synth.people import FACIAL_HAIR, HAIR_STYLES, Person

Box = tuple[float, float, float, float]

# --- facial action controls -------------------------------------------------------
#: Names of the facial action controls (loosely FACS action units; 0 relaxed, 1 apex).
CONTROLS = (
    "brow_inner_raise",     # AU1
    "brow_outer_raise",     # AU2
    "brow_lower",           # AU4: brows down and together
    "lid_raise",            # AU5: upper lid up, white shows above the iris
    "lid_droop",            # upper lid down (sad, tired)
    "lid_tighten",          # AU7: lower lid up, narrow eyes
    "cheek_raise",          # AU6: cheeks up, lower lids pushed up, crow's feet
    "nose_wrinkle",         # AU9
    "upper_lip_raise",      # AU10
    "lip_corner_pull",      # AU12: smile, both sides
    "lip_corner_one_side",  # AU12/14 on one side only (contempt)
    "lip_corner_depress",   # AU15
    "chin_raise",           # AU17
    "lip_stretch",          # AU20
    "lip_press",            # AU23/24
    "jaw_drop",             # AU26/27
)

#: Emotion name (``facelab.labels.EMOTIONS_8``) -> action controls at the apex (intensity 1).
#: Neighbouring classes share controls, so that they are confusable as in real data:
#: Fear/Surprise (raised brows and lids, open mouth; Fear adds brows drawn together and a
#: slight lip stretch), Anger/Disgust (lowered brows, tight lids; Anger presses the lips,
#: Disgust wrinkles the nose and raises the upper lip), Contempt/Neutral/Happiness (one lip
#: corner up).  Format 4 (``writers.FORMAT_VERSION``) made Fear and Disgust closer to their
#: neighbours and further from Happiness, whose smile and teeth they used to share, and
#: strengthened Sadness and Anger, which a small network mixed up with Neutral (it also
#: draws the lip-corner depressor and Contempt's one-sided corner more strongly).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Happiness": {"cheek_raise": 0.8, "lid_tighten": 0.25, "lip_corner_pull": 1.0, "jaw_drop": 0.35},
    "Sadness": {"brow_inner_raise": 1.0, "brow_lower": 0.5, "lid_droop": 0.8,
                "lip_corner_depress": 1.0, "chin_raise": 0.9},
    "Surprise": {"brow_inner_raise": 0.9, "brow_outer_raise": 1.0, "lid_raise": 0.85, "jaw_drop": 1.0},
    "Fear": {"brow_inner_raise": 1.0, "brow_outer_raise": 0.85, "brow_lower": 0.25, "lid_raise": 1.0,
             "lip_stretch": 0.25, "jaw_drop": 0.8},
    "Anger": {"brow_lower": 1.0, "lid_tighten": 0.7, "lid_raise": 0.5, "lip_press": 1.0,
              "chin_raise": 0.3, "nose_wrinkle": 0.15, "lip_corner_depress": 0.2},
    "Disgust": {"nose_wrinkle": 1.0, "upper_lip_raise": 0.6, "brow_lower": 1.0, "lid_tighten": 0.7,
                "lip_corner_depress": 0.5, "chin_raise": 0.3},
    "Contempt": {"lip_corner_one_side": 1.0, "lid_tighten": 0.15},
}
assert set(EXPRESSIONS) == set(EMOTIONS_8)


def expression_controls(emotion: str, intensity: float = 1.0, expressiveness: float = 1.0) -> dict[str, float]:
    """All action controls for ``emotion``: apex table x intensity x expressiveness, clipped to 1."""
    if emotion not in EXPRESSIONS:
        raise InvalidInputError(f"emotion={emotion!r} is unknown; use one of {', '.join(EMOTIONS_8)}")
    try:
        k = float(intensity)
    except (TypeError, ValueError):
        k = float("nan")
    if not 0.0 <= k <= 1.0:
        raise InvalidInputError(f"intensity={intensity!r} must be a number in [0, 1]")
    k *= float(expressiveness)
    table = EXPRESSIONS[emotion]
    return {c: min(1.0, table.get(c, 0.0) * k) for c in CONTROLS}


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
    try:
        lv = float(level)
    except (TypeError, ValueError):
        lv = float("nan")
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


# --- small numeric helpers ------------------------------------------------------------------
def _smoothstep(a: float, b: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3.0 - 2.0 * t)


def _mix(c1, c2, t: float):
    return tuple(a * (1 - t) + b * t for a, b in zip(c1, c2))


def _scale_col(c, k: float):
    return tuple(min(255.0, max(0.0, v * k)) for v in c)


_CIRCLE = {n: (np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
               np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))) for n in (8, 12, 16, 24)}
_U7, _U9, _U11, _U13 = (np.linspace(-1.0, 1.0, n) for n in (7, 9, 11, 13))
_ONES = np.ones(512)
_NAN = np.full(512, np.nan)
_NAN.setflags(write=False)
_ONES.setflags(write=False)
_DEPTH = 0.36          # how far the face front sits in front of the head's vertical axis


PERSON, SKIN, COVER = 1, 2, 3     # mask codes of solid shapes (see _Pen.poly)


# --- the pen: a display list in face coordinates ------------------------------------------------
class _Pen:
    """Records shapes in face coordinates and draws them after one batched projection.

    Projection: yaw ``X = x cos(yaw) + z sin(yaw)`` (orthographic turn about the
    vertical axis; z defaults to the face surface :meth:`zsurf`), then roll rotates
    (X, y) about the face-box centre, then scale and shift to pixels.  Shapes made
    from the head silhouette are recorded already turned (``turned=True``).
    """

    def __init__(self, cx: float, cy: float, scale: float, yaw_deg: float, roll_deg: float):
        self.cx, self.cy, self.s = cx, cy, scale
        self.cyaw, self.syaw = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        self.cr, self.sr = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
        self.items: list[tuple] = []
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.zs: list[np.ndarray] = []
        self.turned: list[np.ndarray] = []

    @staticmethod
    def zsurf(x):
        """Depth of the face surface at horizontal position x (front of a rounded head)."""
        x = np.asarray(x, dtype=float)
        return _DEPTH * np.sqrt(np.maximum(1.0 - 4.0 * x * x, 0.0)) - 0.05

    def turn(self, x, y=None, z=None):
        """Yawed x' of face points (immediately, for shapes that mix in the silhouette)."""
        x = np.asarray(x, dtype=float)
        if z is None:
            z = self.zsurf(x)
        return x * self.cyaw + np.asarray(z, dtype=float) * self.syaw

    def pixel(self, xt: float, y: float) -> tuple[float, float]:
        """One turned point -> pixel coordinates."""
        return (self.cx + self.s * (xt * self.cr - y * self.sr), self.cy + self.s * (xt * self.sr + y * self.cr))

    # --- recording ---
    def _add(self, kind, x, y, z, turned, colour, alpha, width=0.0, solid=0):
        if alpha <= 0.02:
            return
        x = np.asarray(x, dtype=float).ravel()
        n = x.size
        self.xs.append(x)
        self.ys.append(y * _ONES[:n] if np.ndim(y) == 0 else np.asarray(y, dtype=float).ravel())
        self.zs.append(_NAN[:n] if z is None else (z * _ONES[:n] if np.ndim(z) == 0 else
                                                     np.asarray(z, dtype=float).ravel()))
        self.turned.append(turned)
        a = 255.0 * alpha
        self.items.append((kind, n, (int(colour[0] + 0.5), int(colour[1] + 0.5), int(colour[2] + 0.5),
                                     int((a if a < 255.0 else 255.0) + 0.5)), width, solid))

    def poly(self, x, y, colour, alpha=1.0, z=None, solid=0, turned=False):
        """Filled polygon.  ``solid``: 0 a detail; PERSON (body, clothes) also enters the
        person mask; SKIN (head, ears) also the skin mask; COVER (hair, hat) enters the
        person mask and removes what it covers from the skin mask."""
        self._add("poly", x, y, z, turned, colour, alpha, solid=solid)

    def line(self, x, y, colour, alpha, width, z=None, turned=False):
        """Polyline of ``width`` face units."""
        self._add("line", x, y, z, turned, colour, alpha, width=width)

    def ellipse(self, x0, y0, rx, ry, colour, alpha=1.0, z=None, n=16, rot=0.0, solid=0):
        c, s = _CIRCLE[n]
        x, y = rx * c, ry * s
        if rot:
            cr, sr = math.cos(rot), math.sin(rot)
            x, y = x * cr - y * sr, x * sr + y * cr
        self.poly(x0 + x, y0 + y, colour, alpha, z=z, solid=solid)

    def blob(self, x0, y0, rx, ry, colour, alpha, steps=3, z=None):
        """A soft ellipse: nested ellipses whose alphas add up to ``alpha`` at the centre."""
        for k in range(steps):
            r = 1.0 - k / steps
            self.ellipse(x0, y0, rx * r, ry * r, colour, alpha / steps, z=z, n=12)

    def dots(self, x, y, radius, colour, alpha):
        """Small round dots (freckles) of ``radius`` face units."""
        for xi, yi in zip(np.asarray(x, dtype=float), np.asarray(y, dtype=float)):
            self._add("dot", np.array([xi]), yi, None, False, colour, alpha, width=radius)

    # --- drawing ---
    def flush(self, draw: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw | None = None,
              skin: ImageDraw.ImageDraw | None = None) -> None:
        """Project every recorded point at once and draw the shapes in order."""
        if not self.items:
            return
        x = np.concatenate(self.xs)
        y = np.concatenate(self.ys)
        z = np.concatenate(self.zs)
        pre = np.repeat(np.array(self.turned), [it[1] for it in self.items])
        zdef = np.isnan(z)
        z[zdef] = self.zsurf(x[zdef])
        X = np.where(pre, x, x * self.cyaw + z * self.syaw)
        pts = np.empty((x.size, 2))
        pts[:, 0] = self.cx + self.s * (X * self.cr - y * self.sr)
        pts[:, 1] = self.cy + self.s * (X * self.sr + y * self.cr)
        flat = pts.ravel().tolist()
        i = 0
        for kind, n, rgba, width, solid in self.items:
            seg = flat[2 * i: 2 * (i + n)]
            i += n
            if kind == "poly":
                if n >= 3:
                    draw.polygon(seg, fill=rgba)
                    if solid and mask is not None:
                        mask.polygon(seg, fill=255)
                        if solid != PERSON and skin is not None:
                            skin.polygon(seg, fill=255 if solid == SKIN else 0)
            elif kind == "line":
                if n >= 2:
                    draw.line(seg, fill=rgba, width=max(1, int(width * self.s + 0.5)), joint="curve")
            else:
                r = max(0.6, width * self.s)
                draw.ellipse((seg[0] - r, seg[1] - r, seg[0] + r, seg[1] + r), fill=rgba)


# --- the face model: identity + age + expression -> shape parameters ----------------------
@dataclass
class _Face:
    """Shape parameters of one face (face coordinates) after age and expression."""

    a: float            # half width at the temples / cheeks
    jaw: float          # jaw width ratio
    jaw_k: float        # jaw superellipse exponent (higher = squarer)
    top: float          # y of the skull top
    chin: float         # y of the chin bottom (jaw drop moves it)
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    iris_r: float
    brow_y: float
    brow_th: float
    nose_y: float       # y of the nose tip
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_u: float
    lip_l: float
    hairline: float
    child: float        # 1 toddler .. 0 adult proportions
    old: float          # 0 .. 1 sagging and thinning
    wrinkle: float      # strength of age lines
    grey: float         # 0 .. 1 grey hair
    ctl: dict
    hw_table: np.ndarray | None = None   # outline half widths on a fixed grid (cache)


def _face_model(person: Person, age: float, ctl: dict[str, float]) -> _Face:
    """Identity traits + age + action controls -> face shape (all smooth in age)."""
    t = person.traits
    child = 1.0 - _smoothstep(1.0, 17.0, age)
    old = _smoothstep(35.0, 92.0, age)
    wrinkle = min(1.3, t.wrinkle_prone * _smoothstep(24.0, 88.0, age))
    grey = 1.0 / (1.0 + math.exp(-(age - t.grey_onset) / 6.5))
    eye_y = -0.115 + 0.045 * child
    eye_w = t.eye_size * (1 + 0.24 * child)
    nose_len = t.nose_length * (1 - 0.4 * child) * (1 + 0.05 * old)
    nose_y = eye_y + 0.235 * nose_len
    mouth_y = nose_y + 0.155 - 0.035 * child + 0.012 * old
    lip_k = (1 - 0.3 * old) * (1 - 0.6 * ctl["lip_press"]) * (1 - 0.25 * ctl["lip_stretch"])
    recede = t.balding * 0.3 * _smoothstep(22.0, 65.0, age)
    return _Face(
        a=t.face_width + 0.03 * child,
        jaw=t.jaw_width * (1 - 0.25 * child) + 0.25 * child + 0.05 * old,
        jaw_k=t.jaw_square * (1 - child) + 2.0 * child + 0.3 * old,
        top=-0.86 - 0.2 * child,
        chin=0.5 + 0.07 * ctl["jaw_drop"] + 0.015 * ctl["lip_stretch"],
        eye_y=eye_y, eye_dx=t.eye_spacing * (1 - 0.04 * child), eye_w=eye_w,
        eye_h=eye_w * t.eye_open * (1 + 0.22 * child) * (1 - 0.05 * old),
        iris_r=eye_w * (0.215 + 0.055 * child),
        brow_y=eye_y - 0.12 - t.brow_height + 0.012 * old,
        brow_th=t.brow_thickness * (1 - 0.5 * child) * (1 - 0.2 * old),
        nose_y=nose_y, nose_w=0.056 * t.nose_width * (1 - 0.25 * child) * (1 + 0.08 * old),
        mouth_y=mouth_y,
        mouth_w=0.15 * t.mouth_width * (1 - 0.25 * child) * (1 + 0.22 * ctl["lip_stretch"])
        * (1 - 0.06 * ctl["lip_press"]) * (1 + 0.12 * ctl["lip_corner_pull"]),
        lip_u=0.032 * t.lip_upper * lip_k, lip_l=0.04 * t.lip_lower * lip_k,
        hairline=eye_y - 0.36 - t.hairline - recede - 0.06 * child,
        child=child, old=old, wrinkle=wrinkle, grey=grey, ctl=ctl,
    )


def _half_width(f: _Face, y) -> np.ndarray:
    """Half width of the head outline at heights y (from a table made once per face)."""
    if f.hw_table is None:   # the skull part of the grid does not depend on the jaw (chin)
        f.hw_table = np.concatenate([_half_width_exact(f, _HW_GRID * (_JAW_Y - f.top) + f.top),
                                     _half_width_exact(f, _HW_GRID * (f.chin - _JAW_Y) + _JAW_Y)])
    grid = np.concatenate([_HW_GRID * (_JAW_Y - f.top) + f.top, _HW_GRID * (f.chin - _JAW_Y) + _JAW_Y])
    return np.interp(y, grid, f.hw_table)


_HW_GRID = np.linspace(0.0, 1.0, 81)
_JAW_Y = -0.02                             # where the jaw starts (see _half_width_exact)


def _half_width_exact(f: _Face, y: np.ndarray) -> np.ndarray:
    """Half width of the head outline at heights y: a rounded skull above the temples,
    straight-ish cheeks, then a superellipse jaw that sags a little with age."""
    yw, yc = -0.26, _JAW_Y                 # widest (temples) and start of the jaw
    y = np.asarray(y, dtype=float)
    skull = f.a * np.maximum(1.0 - np.abs(np.minimum(y - yw, 0.0) / (f.top - yw)) ** 2.3, 0.0) ** (1 / 2.3)
    cheek = f.a * (1.0 - 0.04 * np.clip((y - yw) / (yc - yw), 0.0, 1.0))
    t = np.clip((y - yc) / (f.chin - yc), 0.0, 1.0)
    k = f.jaw_k
    sag = 1.0 + 0.08 * f.old * np.exp(-((t - 0.72) / 0.15) ** 2)
    jaw = 0.96 * f.a * (1 - (1 - f.jaw) * t) * (1.0 - t ** k) ** (1.0 / k) * sag
    return np.where(y < yw, skull, np.where(y < yc, cheek, jaw))


def _silhouette_x(pen: _Pen, f: _Face, y: np.ndarray):
    """Turned left and right outline x at heights y.  Each height is an elliptic
    section; below the eyes its front stays at the face surface, so the chin turns
    with the face while the skull turns about its own centre."""
    hw = _half_width(f, y)
    d = hw * (_DEPTH / f.a)
    zc = np.clip((y + 0.25) / 0.35, 0.0, 1.0) * (_DEPTH - d)
    half = np.sqrt((hw * pen.cyaw) ** 2 + (d * pen.syaw) ** 2)
    centre = zc * pen.syaw
    return centre - half, centre + half


_SKULL_S = 1 - np.cos(np.linspace(0.0, np.pi / 2, 15))
_JAW_S = np.sin(np.linspace(0.0, np.pi / 2, 12))[1:]


def _outline_y(f: _Face) -> np.ndarray:
    """Heights sampling the head outline: the skull down to the jaw start (fixed,
    whatever the expression), then the jaw to the chin."""
    return np.concatenate([f.top + (_JAW_Y - f.top) * _SKULL_S, _JAW_Y + (f.chin - _JAW_Y) * _JAW_S])


# --- colours -----------------------------------------------------------------------------------
def _skin_colour(person: Person, f: _Face):
    skin = person.traits.skin
    skin = _mix(skin, _scale_col(skin, 1.03), f.child * 0.5)
    return _mix(skin, (skin[0] * 0.97, skin[1] * 0.95, skin[2] * 0.88), f.old * 0.6)


def _hair_colour(person: Person, f: _Face):
    return _mix(person.traits.hair_color, (186.0, 184.0, 180.0), 0.9 * f.grey)


def _luminance(c) -> float:
    return (0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]) / 255.0


# --- parts, back to front ------------------------------------------------------------------------
def _draw_body(pen: _Pen, person: Person, f: _Face, skin) -> None:
    """Shoulders in clothes, neck and collar (smaller for children)."""
    t = person.traits
    k = 1.0 - 0.3 * f.child
    tx = np.array([-0.2, -0.55, -1.05, -1.2, -1.25, 1.25, 1.2, 1.05, 0.55, 0.2]) * k
    ty = np.array([0.72, 0.8, 0.92, 1.15, 2.4, 2.4, 1.15, 0.92, 0.8, 0.72])
    pen.poly(tx, ty, t.clothes, z=-0.1, solid=PERSON)
    nw = 0.24 * (f.a / 0.46) * (1 - 0.2 * f.child)
    nx = np.array([-nw, -nw * 1.05, -nw * 1.5, nw * 1.5, nw * 1.05, nw])
    ny = np.array([0.2, 0.7, 0.84, 0.84, 0.7, 0.2])
    pen.poly(nx, ny, _scale_col(skin, 0.78), z=0.0, solid=PERSON)
    pen.line(np.array([-0.55, -0.2, 0.0, 0.2, 0.55]) * k, np.array([0.80, 0.74, 0.92, 0.74, 0.80]),
             _scale_col(t.clothes, 0.6), 0.8, 0.012, z=0.0)


def _draw_back_hair(pen: _Pen, person: Person, f: _Face, age: float, hair) -> None:
    """Long, bob and curly hair behind the head and neck."""
    style = HAIR_STYLES[person.traits.hair_style]
    if style not in ("long", "curly", "bob"):
        return
    reach, width = {"long": (1.05, 0.13), "bob": (0.4, 0.08), "curly": (0.3, 0.16)}[style]
    grow = _smoothstep(0.0, 6.0, age)             # toddlers' hair is still short
    if grow <= 0.05:
        return
    reach = 0.1 + (reach - 0.1) * grow
    width *= grow
    y = _outline_y(f)
    y = y[y < 0.1]
    xl, xr = _silhouette_x(pen, f, y)
    xs = np.concatenate([xl - width, [xl[-1] - width - 0.04, xr[-1] + width + 0.04], xr[::-1] + width])
    ys = np.concatenate([y - width * 0.6, [reach, reach], y[::-1] - width * 0.6])
    pen.poly(xs, ys, _scale_col(hair, 0.8), solid=PERSON, turned=True)


def _draw_ears(pen: _Pen, person: Person, f: _Face, skin) -> None:
    """Ears at the head outline; the far ear slides behind the head as it turns."""
    t = person.traits
    y0 = (f.eye_y + f.nose_y) / 2 - 0.02
    h = 0.13 * t.ear_size * (1 + 0.12 * f.old) * (1 - 0.1 * f.child)
    w = 0.05 * t.ear_size * t.ear_out
    xl, xr = _silhouette_x(pen, f, np.array([y0]))
    c8x, c8y = _CIRCLE[12]
    for side, edge in ((-1, float(xl[0])), (1, float(xr[0]))):
        far = side * pen.syaw > 0          # the side the nose turns toward is the far side
        vis = 1.0 - 1.6 * abs(pen.syaw) if far else 1.0 + 0.8 * abs(pen.syaw)
        ex = edge - side * 0.012 + side * w * 0.55 * max(vis, -0.5)
        pen.poly(ex + w * 0.9 * c8x, y0 + h / 2 * c8y, _scale_col(skin, 0.9), solid=SKIN, turned=True)
        pen.poly(ex + side * 0.004 + w * 0.45 * c8x, y0 + h * 0.32 * c8y, _scale_col(skin, 0.72), 0.8,
                 turned=True)


def _draw_head(pen: _Pen, f: _Face, skin) -> None:
    y = _outline_y(f)
    xl, xr = _silhouette_x(pen, f, y)
    pen.poly(np.concatenate([xr, xl[::-1]]), np.concatenate([y, y[::-1]]), skin, solid=SKIN, turned=True)


def _modelling_spots(f: _Face, skin) -> np.ndarray:
    """Soft light and shade of a rounded, lit face as Gaussian spots in face
    coordinates: rows (x, y, sigma_x, sigma_y, amplitude); the skin is multiplied by
    1 + sum of the spots.  Darker skin gets a stronger sheen, as in photos."""
    sheen = 0.6 + 1.0 * (1.0 - _luminance(skin))
    a, ex, ey, ny, my = f.a, f.eye_dx, f.eye_y, f.nose_y, f.mouth_y
    rows = [
        (0.0, f.brow_y - 0.16, 0.2, 0.09, 0.13 * sheen),             # forehead
        (0.0, (ey + ny) / 2, 0.028, 0.09, 0.12 * sheen),             # nose bridge
        (0.0, ny - 0.015, 0.03, 0.025, 0.12 * sheen),                # nose tip
        (0.0, f.chin - 0.06, 0.06, 0.03, 0.09 * sheen),              # chin
        (0.0, ny + 0.035, 0.045, 0.014, -0.16),                      # under the nose
        (0.0, my + 0.06, 0.05, 0.02, -0.12),                         # under the lower lip
    ]
    for s in (-1.0, 1.0):
        rows += [
            (s * (ex + 0.035), ny - 0.045, 0.075, 0.045, 0.1 * sheen),          # cheekbone
            (s * ex, ey - 0.03, 0.085, 0.055, -0.2 - 0.1 * f.old),             # eye socket
            (s * (ex - f.eye_w * 0.55), ey, 0.025, 0.04, -0.18),               # inner eye corner
            (s * f.nose_w * 1.25, ey + 0.1, 0.02, 0.07, -0.12),                # side of the nose
            (s * a * 0.8, ny + 0.09, 0.07, 0.12, -0.13),                       # under the cheekbone
            (s * a * 0.92, f.brow_y - 0.02, 0.05, 0.1, -0.1),                  # temple
        ]
    return np.array(rows, dtype=np.float32)


def _draw_skin_marks(pen: _Pen, person: Person, f: _Face, skin) -> None:
    """Cheek blush, freckles, moles and lines; age lines grow smoothly with age and
    expression lines (forehead, frown, nasolabial, crow's feet) with the controls."""
    t = person.traits
    c = f.ctl
    blush = 0.18 * t.cheek_blush + 0.2 * f.child + 0.15 * c["cheek_raise"]
    cheek_y = f.nose_y - 0.02 - 0.03 * c["cheek_raise"]
    for side in (-1, 1):
        pen.blob(side * (f.eye_dx + 0.03), cheek_y + 0.01, 0.1, 0.07, (225, 110, 110), blush * 0.4)
        pen.blob(side * (f.eye_dx + 0.02), cheek_y - 0.005, 0.08, 0.05, _mix(skin, (255, 240, 228), 0.25),
                 0.4 * c["cheek_raise"], steps=2)
    if t.freckles > 0:
        frng = np.random.default_rng(zlib.crc32(person.name.encode()))
        n = int(10 + 30 * t.freckles)
        pen.dots(frng.normal(0.0, 0.13, n), frng.normal(f.nose_y - 0.06, 0.05, n), 0.006,
                 _scale_col(skin, 0.75), 0.45 * (1 - 0.6 * f.old))
    for (mx, my, mr) in t.moles:
        pen.ellipse(mx * f.a / 0.46, my, mr, mr, (70, 45, 35), 0.85, n=8)
    dark = _scale_col(skin, 0.55)
    w = f.wrinkle
    raise_ = max(c["brow_inner_raise"], c["brow_outer_raise"])
    fore = 0.55 * w + 0.45 * raise_ * (0.4 + 0.6 * (1 - f.child))
    for i in range(3):
        yy = f.brow_y - 0.08 - 0.06 * i
        if yy < f.hairline + 0.03:
            break
        xs = (0.2 - 0.03 * i) * _U7
        pen.line(xs, yy - 0.012 * np.cos(xs / 0.2 * 1.5) - 0.02 * raise_, dark, min(0.8, fore * (0.75 - 0.15 * i)),
                 0.008)
    feet = 0.6 * w + 0.35 * c["cheek_raise"]
    mw = f.mouth_w
    for side in (-1, 1):
        ox = side * (f.eye_dx + f.eye_w * 0.6)
        for k in (-1, 0, 1):
            pen.line(np.array([ox, ox + side * 0.045]), np.array([f.eye_y + 0.005 * k, f.eye_y + 0.022 * k]),
                     dark, min(0.8, feet * 0.6), 0.006)
        # under-eye bag
        pen.line(side * (f.eye_dx + 0.05 * _U7[1:-1]),
                 f.eye_y + f.eye_h * 0.6 + 0.035 - 0.01 * np.cos(1.5 * _U7[1:-1]),
                 dark, min(0.6, 0.45 * w + 0.2 * f.old), 0.007)
        # nasolabial fold: from the nose wing round the mouth corner
        fold = 0.5 * w + 0.55 * c["lip_corner_pull"] + 0.5 * c["upper_lip_raise"] + 0.25 * c["cheek_raise"] \
            + (0.5 * c["lip_corner_one_side"] if side > 0 else 0.0)
        pen.line(side * np.array([f.nose_w * 1.6, f.nose_w * 2.0 + 0.02, mw + 0.035, mw + 0.035]),
                 np.array([f.nose_y - 0.02, f.nose_y + 0.04, f.mouth_y, f.mouth_y + 0.06 + 0.04 * f.old]),
                 dark, min(0.7, fold * 0.6), 0.009)
        # marionette lines of old age
        pen.line(side * np.array([mw + 0.01, mw + 0.02, mw + 0.01]), f.mouth_y + np.array([0.03, 0.1, 0.16]),
                 dark, min(0.6, 0.55 * max(0.0, w - 0.35)), 0.007)
        # frown lines between the brows (age + brow lowering)
        frown = 0.35 * max(0.0, w - 0.3) + 0.8 * c["brow_lower"]
        pen.line(np.array([side * 0.025, side * 0.02]), np.array([f.brow_y - 0.02, f.brow_y + 0.05]),
                 dark, min(0.7, frown * 0.55), 0.008)


def _eye_curves(f: _Face, side: int, tilt: float):
    """Upper and lower lid curves of one eye, from the inner to the outer corner."""
    c = f.ctl
    u = _U9                                     # -1 inner corner, +1 outer corner
    x = side * (f.eye_dx + u * f.eye_w / 2)
    cy = f.eye_y - tilt * u * 0.5 * f.eye_w
    up = f.eye_h * 0.62 * (1 + 0.75 * c["lid_raise"] - 0.55 * c["lid_droop"] - 0.12 * c["lid_tighten"]
                           - 0.15 * c["cheek_raise"])
    lo = f.eye_h * 0.42 * (1 + 0.35 * c["lid_raise"] - 0.6 * c["lid_tighten"] - 0.65 * c["cheek_raise"])
    yu = cy - up * (1 - u ** 2) ** 0.75 * (1 + 0.15 * u)       # peak slightly toward the inner side
    yl = cy + lo * (1 - u ** 2) ** 0.9 * (1 - 0.1 * u)
    return x, yu, yl


def _draw_eyes(pen: _Pen, person: Person, f: _Face, skin, hair, gaze) -> None:
    """Sclera, iris and pupil clipped by the lids, lash line, crease and lower lid."""
    t = person.traits
    dark = _scale_col(skin, 0.55)
    lash = _mix(_scale_col(hair, 0.45), (20, 16, 14), 0.6)
    cxs, cys = _CIRCLE[16]
    for side in (-1, 1):
        x, yu, yl = _eye_curves(f, side, t.eye_tilt)
        order = np.argsort(x)
        xo, yuo, ylo = x[order], yu[order], yl[order]
        cx = side * f.eye_dx
        crease = yu - 0.018 - 0.2 * f.eye_h * (1 - 0.6 * f.old)
        pen.line(x[1:-1], crease[1:-1], dark, 0.35 + 0.2 * f.old, 0.006)
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([yu, yl[::-1]]), (236, 232, 226))
        ix = cx + gaze[0] * f.eye_w * 0.18
        iy = f.eye_y + gaze[1] * f.eye_h * 0.15 - 0.1 * f.iris_r * f.ctl["lid_droop"]
        r = f.iris_r
        for rad, colour in ((r, t.iris), (r * 0.45, (12, 10, 10))):
            px_ = ix + rad * cxs
            py_ = np.clip(iy + rad * cys, np.interp(px_, xo, yuo), np.interp(px_, xo, ylo))
            pen.poly(px_, py_, colour)
        hl_y = max(iy - r * 0.35, float(np.interp(ix - r * 0.3, xo, yuo)) + 0.004)
        pen.ellipse(ix - r * 0.3 * side, hl_y, r * 0.18, r * 0.18, (255, 255, 255), 0.85, n=8)
        pen.line(x, yu, lash, 0.95, 0.013 + 0.004 * (person.gender == 1))
        pen.line(x[2:-1], yl[2:-1], dark, 0.45, 0.005)


def _draw_brows(pen: _Pen, person: Person, f: _Face) -> None:
    """Brows: inner raise (AU1), outer raise (AU2), lowering and knitting (AU4)."""
    t = person.traits
    c = f.ctl
    colour = _mix(_scale_col(t.hair_color, 0.7), (120, 118, 115), 0.4 * f.grey)
    colour = _mix(colour, t.skin, 0.25 * f.child)
    u = (_U7 + 1) / 2                          # 0 inner .. 1 outer
    arch = t.brow_arch * 0.03 * np.sin(np.pi * np.clip(u * 1.15, 0, 1))
    th = f.brow_th * (0.75 + 0.45 * np.sin(np.pi * (0.25 + 0.6 * u)))
    th = th * np.where(u > 0.85, 1 - (u - 0.85) * 3.0, 1.0)
    y = f.brow_y - arch + 0.012 * u
    y = y - 0.065 * c["brow_inner_raise"] * (1 - u) ** 1.3 - 0.02 * c["brow_inner_raise"]
    y = y - 0.05 * c["brow_outer_raise"] * (0.25 + 0.75 * u)
    y = y + 0.055 * c["brow_lower"] * (1 - 0.65 * u) + 0.012 * c["lid_droop"] * u
    th = th * (1 + 0.2 * c["brow_lower"])                      # lowered brows bunch up
    for side in (-1, 1):
        x = side * (0.055 - 0.025 * c["brow_lower"] + u * (f.eye_w * 0.98 + 0.075))
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([y - th * 0.5, (y + th * 0.5)[::-1]]), colour, 0.92)


def _draw_nose(pen: _Pen, f: _Face, skin) -> None:
    """Nose bridge shadow, tip, wings and nostrils; wrinkled and widened by AU9/AU10."""
    c = f.ctl
    dark = _scale_col(skin, 0.62)
    nw = f.nose_w * (1 + 0.2 * c["nose_wrinkle"] + 0.08 * c["upper_lip_raise"])
    ny = f.nose_y - 0.015 * c["nose_wrinkle"] - 0.01 * c["upper_lip_raise"]
    side = 1 if pen.syaw >= 0 else -1          # the bridge shadow shows more on the far side
    pen.line(np.array([0.03, 0.035, 0.045, nw * 0.9]) * side,
             np.array([f.eye_y + 0.02, f.eye_y + 0.09, ny - 0.06, ny - 0.015]),
             dark, 0.3 + 0.25 * abs(pen.syaw), 0.009,
             z=np.array([_DEPTH - 0.03, _DEPTH, _DEPTH + 0.04, _DEPTH + 0.02]))
    pen.ellipse(0.0, ny - 0.01, nw * 0.75, 0.032, _scale_col(skin, 1.06), 0.65, z=_DEPTH + 0.1, n=12)
    for s in (-1, 1):
        pen.ellipse(s * nw * 1.05, ny + 0.002, nw * 0.55, 0.026, _scale_col(skin, 0.86), 0.55,
                    z=_DEPTH + 0.03, n=12)
        pen.ellipse(s * nw * 0.55, ny + 0.016, nw * 0.32, 0.011, (60, 35, 30), 0.8, z=_DEPTH + 0.05,
                    rot=s * 0.35, n=8)
    pen.line(nw * 0.6 * _U7[1:-1], ny + 0.035, dark, 0.25, 0.008, z=_DEPTH + 0.02)
    if c["nose_wrinkle"] > 0.02:
        for k in range(3):
            yy = f.eye_y + 0.045 + 0.018 * k
            pen.line(np.array([-0.035, 0.0, 0.035]), np.array([yy + 0.006, yy, yy + 0.006]), dark,
                     0.75 * c["nose_wrinkle"], 0.006, z=_DEPTH)


def _mouth_curves(f: _Face):
    """Lip curves (x from the left to the right corner): outer upper, inner upper,
    inner lower, outer lower, and the mouth opening."""
    c = f.ctl
    t = _U13
    mw = f.mouth_w
    pull, one, dep = c["lip_corner_pull"], c["lip_corner_one_side"], c["lip_corner_depress"]
    base_up = 0.07 * pull - 0.075 * dep - 0.01 * c["lip_stretch"]
    cu = np.where(t > 0, base_up + 0.1 * one, base_up)           # contempt: one corner only
    x = t * (mw + np.where(t > 0, 0.045 * one, 0.0))
    ymid = f.mouth_y - 0.012 * c["upper_lip_raise"] - 0.01 * c["chin_raise"] + 0.01 * dep
    line = ymid - cu * np.abs(t) ** 1.8 + 0.004 * pull
    opening = 0.095 * c["jaw_drop"] + 0.02 * c["upper_lip_raise"] + 0.012 * c["lip_stretch"] * c["jaw_drop"]
    open_up = opening * (0.18 + 0.3 * c["upper_lip_raise"]) * (1 - np.abs(t) ** 2.5)
    open_dn = opening * (0.82 - 0.2 * c["upper_lip_raise"]) * (1 - np.abs(t) ** (2.0 + 1.5 * pull)) ** 0.8
    bow = 1.0 - 0.35 * np.exp(-(t / 0.12) ** 2) + 0.1 * np.exp(-((np.abs(t) - 0.28) / 0.12) ** 2)
    up_th = f.lip_u * (1 - 0.7 * np.abs(t) ** 3) * bow * (1 + 0.4 * c["upper_lip_raise"])
    lo_th = f.lip_l * (1 - 0.8 * np.abs(t) ** 2.5)
    y_in_up = line - open_up
    y_in_lo = line + open_dn
    return x, y_in_up - up_th, y_in_up, y_in_lo, y_in_lo + lo_th, opening


def _draw_mouth(pen: _Pen, person: Person, f: _Face, skin) -> None:
    """Lips, the open mouth with teeth, the lip line and corner dimples."""
    c = f.ctl
    x, y_out_up, y_in_up, y_in_lo, y_out_lo, opening = _mouth_curves(f)
    z = pen.zsurf(x) + 0.04 * (1 - _U13 ** 2)
    zz = np.concatenate([z, z[::-1]])
    xx = np.concatenate([x, x[::-1]])
    lip = person.traits.lip_color
    pen.line(0.05 * _U7[1:-1], f.chin - 0.09 + 0.01 * np.cos(1.5 * _U7[1:-1]), _scale_col(skin, 0.7),
             0.2 + 0.3 * c["chin_raise"], 0.008)
    pen.poly(xx, np.concatenate([y_out_up, y_in_up[::-1]]), _scale_col(lip, 0.78), z=zz)
    pen.poly(xx, np.concatenate([y_in_lo, y_out_lo[::-1]]), lip, z=zz)
    if opening > 0.004:
        pen.poly(xx, np.concatenate([y_in_up, y_in_lo[::-1]]), (70, 24, 28), z=zz)
        tooth = np.minimum(y_in_up + 0.026 + 0.01 * c["upper_lip_raise"], y_in_lo)
        k = slice(1, len(x) - 1)
        tx = np.concatenate([x[k], x[k][::-1]]) * 0.93
        tz = np.concatenate([z[k], z[k][::-1]])
        pen.poly(tx, np.concatenate([y_in_up[k], tooth[k][::-1]]), (238, 234, 222), min(1.0, opening / 0.012),
                 z=tz)
        if c["lip_stretch"] + c["upper_lip_raise"] > 0.2:
            low = np.maximum(y_in_lo - 0.016, y_in_up)
            pen.poly(tx * 0.9, np.concatenate([low[k], y_in_lo[k][::-1]]), (225, 220, 205), 0.9, z=tz)
    line_y = (y_in_up + y_in_lo) / 2 if opening <= 0.004 else y_in_up
    pen.line(x, line_y, (60, 28, 28), 0.8, 0.008, z=z)
    for side, i in ((-1, 0), (1, -1)):
        dimple = 0.6 * (c["lip_corner_one_side"] if side > 0 else 0.0) + 0.3 * c["lip_corner_pull"]
        pen.line(np.array([x[i] + side * 0.004, x[i] + side * 0.014]),
                 np.array([line_y[i] - 0.012, line_y[i] + 0.01]), _scale_col(skin, 0.6), min(0.8, dimple), 0.007)


def _beard_amount(person: Person, age: float) -> tuple[str, float]:
    if person.gender != 0:
        return "none", 0.0
    return FACIAL_HAIR[person.traits.facial_hair], _smoothstep(15.0, 23.0, age)


def _draw_beard(pen: _Pen, person: Person, f: _Face, age: float, hair, skin) -> None:
    """Stubble or a short full beard along the jaw and round the mouth (drawn before
    the mouth), leaving the cheeks bare; a soft outer layer and a denser inner one."""
    style, grow = _beard_amount(person, age)
    if style not in ("stubble", "beard") or grow <= 0:
        return
    col = _mix(_scale_col(hair, 0.75), skin, 0.15)
    mw = f.mouth_w
    for y_side, inset, alpha in ((f.eye_y + 0.08, 0.0, 0.4), (f.eye_y + 0.16, 0.012, 0.55)):
        if style == "stubble":
            alpha *= 0.4
        y = np.linspace(y_side, f.chin, 14)
        xl, xr = _silhouette_x(pen, f, y)
        xl, xr = xl + inset, xr - inset
        hw0 = float(_half_width(f, np.array([y_side]))[0]) - 0.01
        # upper edge: sideburn -> down the cheek to below the mouth corner -> up to the upper lip
        bx = np.array([hw0, hw0 * 0.8, mw + 0.07, mw + 0.02, mw * 0.5, 0.0])
        by = np.array([y_side, f.nose_y + 0.02, f.mouth_y + 0.02, f.mouth_y - 0.03, f.nose_y + 0.045,
                       f.nose_y + 0.05])
        ux = np.concatenate([-bx, bx[::-1][1:]])                      # left sideburn -> right sideburn
        uy = np.concatenate([by, by[::-1][1:]])
        pen.poly(np.concatenate([xr, xl[::-1], pen.turn(ux)]), np.concatenate([y, y[::-1], uy]), col,
                 alpha * grow, turned=True)


def _draw_moustache(pen: _Pen, person: Person, f: _Face, age: float, hair) -> None:
    """Moustache and goatee (after the mouth; the lower lip stays visible)."""
    style, grow = _beard_amount(person, age)
    if style not in ("moustache", "goatee", "beard") or grow <= 0:
        return
    col = _scale_col(hair, 0.8)
    x, y_out_up, _, _, y_out_lo, _ = _mouth_curves(f)
    mw = f.mouth_w
    mx = mw * 1.05 * _U9
    top = np.interp(mx, x, y_out_up) - 0.035 + 0.012 * np.abs(mx / mw) ** 2
    bot = np.interp(mx, x, y_out_up) + 0.006 + 0.02 * np.abs(mx / mw) ** 3
    pen.poly(np.concatenate([mx, mx[::-1]]), np.concatenate([top, bot[::-1]]), col, 0.92 * grow)
    if style == "goatee":
        gx = mw * 0.62 * _U9
        top = np.interp(gx, x, y_out_lo) + 0.006
        bot = f.chin - 0.008 - 0.06 * _U9 ** 2                # follows the round of the chin
        pen.poly(np.concatenate([gx, gx[::-1] * 0.8]), np.concatenate([top, bot[::-1]]),
                 _mix(col, person.traits.skin, 0.15), 0.8 * grow)


_VOLUME = {"buzz": 0.008, "short": 0.035, "side_part": 0.04, "bob": 0.05, "long": 0.045, "curly": 0.11,
           "bun": 0.025}


def _draw_front_hair(pen: _Pen, person: Person, f: _Face, age: float, hair, hat: bool) -> None:
    """Hair over the skull down to the hairline (which recedes for balding men),
    hair over the temples, locks that frame the face, a bun or curls."""
    t = person.traits
    style = HAIR_STYLES[t.hair_style]
    baby = _smoothstep(0.0, 6.0, age)          # babies and toddlers have little hair
    bald_top = min(1.0, max(0.0, t.balding * 1.3 * _smoothstep(40.0, 80.0, age) - 0.25))
    volume = _VOLUME[style] * (0.4 + 0.6 * baby)
    alpha = (0.55 if style == "buzz" else 0.97) * (0.35 + 0.65 * baby)
    side_alpha = alpha
    alpha *= 1 - 0.85 * bald_top
    # hairline across the forehead (turns with the face)
    fringe = {"bob": 0.1, "curly": 0.02, "short": 0.015}.get(style, 0.0) * baby
    temple_drop = 0.12 - 0.1 * t.balding * _smoothstep(25.0, 60.0, age)
    u = _U11
    hx = u * f.a * 0.98
    hy = f.hairline + fringe + temple_drop * np.abs(u) ** 2.5
    if style == "side_part":
        hy = hy + 0.04 * u - 0.03 * np.cos(u * np.pi / 2)
    hy = hy + 0.06 * t.balding * _smoothstep(28.0, 60.0, age) * np.exp(-((np.abs(u) - 0.55) / 0.22) ** 2)
    hxt = pen.turn(hx)
    # outer edge: the skull outline pushed out by the hair volume, from temple to temple
    y_l = np.linspace(hy[0], f.top, 10)
    y_r = np.linspace(f.top, hy[-1], 10)
    xl, _ = _silhouette_x(pen, f, y_l)
    _, xr = _silhouette_x(pen, f, y_r)
    lift_l = volume * 1.2 * np.clip(1 - (y_l - f.top) / 0.5, 0, 1)
    lift_r = volume * 1.2 * np.clip(1 - (y_r - f.top) / 0.5, 0, 1)
    cap_x = np.concatenate([xl - volume, xr + volume, hxt[::-1]])
    cap_y = np.concatenate([y_l - lift_l, y_r - lift_r, hy[::-1]])
    if not hat:
        pen.poly(cap_x, cap_y, hair, alpha, solid=COVER if alpha > 0.5 else 0, turned=True)
    # hair over the temples (kept by balding men: the "horseshoe")
    for s in (-1, 1):
        yy = np.linspace(hy[-1 if s > 0 else 0] - 0.08, f.eye_y - 0.02, 5)
        el, er = _silhouette_x(pen, f, yy)
        edge = er if s > 0 else el
        inner = pen.turn(s * (_half_width(f, yy) - 0.045))
        pen.poly(np.concatenate([edge + s * volume * 0.6, inner[::-1]]), np.concatenate([yy, yy[::-1]]),
                 hair, side_alpha * (0.9 if hat else 1.0), solid=COVER, turned=True)
    if style in ("bob", "long") and baby > 0.2:
        reach = 0.42 if style == "bob" else 0.75
        reach = f.eye_y + (reach - f.eye_y) * baby
        yy = np.linspace(f.eye_y - 0.1, reach, 7)
        el, er = _silhouette_x(pen, f, np.minimum(yy, f.chin - 0.05))
        bulge = 0.03 + 0.02 * np.sin(np.linspace(0, np.pi, 7))
        for s, edge in ((-1, el), (1, er)):
            outer = edge + s * 0.07
            inner = np.where(yy > f.chin - 0.1, outer - s * 0.05, edge - s * bulge)
            pen.poly(np.concatenate([outer, inner[::-1]]), np.concatenate([yy, yy[::-1]]), _scale_col(hair, 0.95),
                     0.95, solid=COVER, turned=True)
    if hat:
        return
    cx16, cy16 = _CIRCLE[12]
    if style == "bun":
        bx = float(pen.turn(np.array([0.0]), z=np.array([-0.1]))[0])
        pen.poly(bx + 0.13 * cx16, f.top - 0.02 + 0.11 * cy16, _scale_col(hair, 0.9), baby, solid=COVER,
                 turned=True)
    if style == "curly":
        n_out = len(y_l) + len(y_r)
        for i in range(0, n_out, 2):
            pen.poly(cap_x[i] + 0.045 * cx16, cap_y[i] + 0.045 * cy16, hair, alpha,
                     solid=COVER if alpha > 0.5 else 0, turned=True)
    if alpha > 0.3 and style != "buzz":
        dark = _scale_col(hair, 0.7)
        for k in range(5):
            uu = -0.7 + 0.35 * k
            pen.line(np.array([uu * f.a * 0.9, uu * f.a * 0.7 + 0.02, uu * f.a * 0.4]),
                     np.array([f.hairline + 0.02, f.hairline - 0.12, f.top + 0.1]), dark, 0.45 * alpha, 0.008, z=0.1)


def _draw_glasses(pen: _Pen, f: _Face, tint: float) -> None:
    """Glasses: round-ish frames, a bridge and temple arms (an occluder over the eyes)."""
    frame = _mix((25, 22, 20), (120, 90, 60), tint)
    lens_w = f.eye_w * 0.78 + 0.02
    lens_h = max(f.eye_h, 0.05) * 0.9 + 0.04
    zg = _DEPTH + 0.04
    cx24, cy24 = _CIRCLE[24]
    for s in (-1, 1):
        lx = s * f.eye_dx + lens_w * cx24
        ly = f.eye_y + 0.005 + lens_h * cy24
        pen.poly(lx, ly, (200, 215, 230), 0.12, z=zg)
        pen.line(np.append(lx, lx[0]), np.append(ly, ly[0]), frame, 0.95, 0.014, z=zg)
        pen.line(np.array([s * (f.eye_dx + lens_w), s * f.a]), np.array([f.eye_y - 0.01, f.eye_y - 0.03]),
                 frame, 0.9, 0.012, z=np.array([zg, 0.0]))
    pen.line(np.array([-(f.eye_dx - lens_w), 0.0, f.eye_dx - lens_w]),
             np.array([f.eye_y - 0.01, f.eye_y - 0.025, f.eye_y - 0.01]), frame, 0.95, 0.012, z=zg)


def _draw_hat(pen: _Pen, f: _Face, colour, kind: int) -> None:
    """A knit beanie (kind 0) or a cap with a brim (kind 1) over the skull."""
    band = f.brow_y - (0.24 if kind == 0 else 0.27)
    y = np.linspace(f.top, band, 12)
    xl, xr = _silhouette_x(pen, f, y)
    lift = 0.05 * np.clip(1 - (y - f.top) / 0.4, 0, 1) + 0.01     # a hat sits on the hair
    pen.poly(np.concatenate([xl - 0.03, xr[::-1] + 0.03]), np.concatenate([y - lift, (y - lift)[::-1]]), colour,
             solid=COVER, turned=True)
    dark = _scale_col(colour, 0.7)
    if kind == 0:   # the folded rim of a knit beanie, and its ribs
        pen.line(np.linspace(xl[-1] - 0.03, xr[-1] + 0.03, 9), band - 0.07, dark, 0.8, 0.012, turned=True)
        for u in (-0.6, -0.3, 0.0, 0.3, 0.6):
            pen.line(np.array([u * f.a * 0.8, u * f.a * 0.9]), np.array([band - 0.02, band - 0.06]),
                     dark, 0.5, 0.006)
    else:
        bx = _U11 * f.a * 0.95
        by = band + 0.015 + 0.03 * (1 - _U11 ** 2)
        pen.poly(np.concatenate([bx, bx[::-1]]), np.concatenate([by, np.full(11, band - 0.01)]), dark,
                 z=_DEPTH + 0.06)


MODELLING = 1.5   # strength of the face modelling (light and shade spots)


# --- lighting -------------------------------------------------------------------------------------
def _shade(rgb: np.ndarray, mask: np.ndarray, skin: np.ndarray, ox: float, oy: float, cx: float, cy: float,
           h: float, pen_yaw: tuple[float, float], roll_deg: float, gain: float, light_dir: float,
           spots: np.ndarray) -> np.ndarray:
    """Light the person: gain x a horizontal light gradient x rim darkening inside
    the person ``mask``, times the face modelling (:func:`_modelling_spots`) inside the
    ``skin`` mask; the background keeps its own light.

    The fields are smooth, so they are computed on a 4x coarser grid and resized.
    """
    hh, ww = mask.shape
    k = 4
    gh, gw = (hh + k - 1) // k, (ww + k - 1) // k
    xs = ((np.arange(gw, dtype=np.float32) + 0.5) * k + ox - cx) / h
    ys = ((np.arange(gh, dtype=np.float32) + 0.5) * k + oy - cy) / h
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    X = xs[None, :] * c + ys[:, None] * s            # turned face coordinates (roll undone)
    Y = -xs[None, :] * s + ys[:, None] * c
    q = np.clip(np.sqrt((X / 0.46) ** 2 + ((Y + 0.1) / 0.68) ** 2) - 0.55, 0.0, 0.6)
    light = (1.0 - 0.28 * q * np.sqrt(q)) * (1.0 + 0.32 * light_dir * np.clip(X / 0.45, -1.4, 1.4)) \
        * (1.0 + 0.06 * np.clip(-Y, -1, 1)) * gain
    # undo the yaw (two fixed-point steps of X = x cos + zsurf(x) sin) for the spots
    cyaw, syaw = pen_yaw
    x = X / cyaw
    for _ in range(2):
        x = (X - _Pen.zsurf(x) * syaw) / cyaw
    sx, sy, wx, wy, amp = (spots[:, i, None, None] for i in range(5))
    dx = (x[None] - sx) / wx
    dy = (Y[None] - sy) / wy
    model = (amp * np.exp(-(dx * dx + dy * dy))).sum(axis=0)
    # encode both fields as bytes (1 + (v - 128) / 200) so PIL resizes them smoothly
    code = np.empty((2, gh, gw), dtype=np.float32)
    code[0] = (light - 1.0) * 200.0 + 128.5
    code[1] = model * 200.0 + 128.5
    code = np.clip(code, 0, 255).astype(np.uint8)
    big = [np.asarray(Image.fromarray(code[i], "L").resize((ww, hh), Image.Resampling.BILINEAR))
           for i in range(2)]
    k1 = np.float32(1.0 / (200.0 * 255.0))
    field = (big[0] - np.float32(128.0)) * mask
    field *= k1
    field += 1.0
    skin_term = (big[1] - np.float32(128.0)) * skin
    skin_term *= k1
    skin_term += 1.0
    field *= skin_term
    out = rgb * field[..., None]
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


# --- public: paint one face ---------------------------------------------------------------------------
def _check_age(age) -> float:
    try:
        a = float(age)
    except (TypeError, ValueError):
        a = float("nan")
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


def _box_from_face(pen: _Pen, f: _Face) -> Box:
    """Detector-like face box (x1, y1, x2, y2) around the turned and tilted face."""
    def coef(c):
        return c[0] + c[1] * f.child + c[2] * f.old

    span = f.chin - f.eye_y
    y_top = f.eye_y - coef(BOX_TOP) * span
    y_bot = f.chin + coef(BOX_BOTTOM) * span
    y = np.array([f.eye_y, f.nose_y, f.mouth_y])
    xl, xr = _silhouette_x(pen, f, y)
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
    f = _face_model(person, _check_age(age), ctl)
    return _box_from_face(_Pen(float(center[0]), float(center[1]), float(face_height), yaw, roll), f)


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
    try:
        H = float(face_height)
    except (TypeError, ValueError):
        H = float("nan")
    if not (H > 0 and math.isfinite(H)):
        raise InvalidInputError(f"face_height={face_height!r} must be a positive number of pixels")
    ctl = expression_controls(emotion, intensity, person.traits.expressiveness)
    f = _face_model(person, age, ctl)
    rng = rng if rng is not None else np.random.default_rng(0)
    gaze = rng.uniform(-1.0, 1.0, 2)
    hat_colour = tuple(float(v) for v in rng.uniform(30, 230, 3))
    hat_kind = int(rng.integers(2))
    tint = float(rng.uniform())

    cx, cy = float(center[0]), float(center[1])
    box = _box_from_face(_Pen(cx, cy, H, yaw, roll), f)
    x0 = max(0, int(math.floor(cx - 1.35 * H)))
    x1 = min(canvas.width, int(math.ceil(cx + 1.35 * H)))
    y0 = max(0, int(math.floor(cy - 1.3 * H)))
    y1 = min(canvas.height, int(math.ceil(cy + 2.4 * H)))
    if x1 <= x0 or y1 <= y0:
        return box
    ss = 3 if H < 40 else (2 if H < 100 else 1)     # supersampling: small faces need more
    pen = _Pen((cx - x0) * ss, (cy - y0) * ss, H * ss, yaw, roll)
    skin = _skin_colour(person, f)
    hair = _hair_colour(person, f)
    _draw_back_hair(pen, person, f, age, hair)
    _draw_body(pen, person, f, skin)
    _draw_ears(pen, person, f, skin)
    _draw_head(pen, f, skin)
    _draw_skin_marks(pen, person, f, skin)
    _draw_eyes(pen, person, f, skin, hair, gaze)
    _draw_brows(pen, person, f)
    _draw_nose(pen, f, skin)
    _draw_beard(pen, person, f, age, hair, skin)
    _draw_mouth(pen, person, f, skin)
    _draw_moustache(pen, person, f, age, hair)
    _draw_front_hair(pen, person, f, age, hair, hat)
    if hat:
        _draw_hat(pen, f, hat_colour, hat_kind)
    if glasses:
        _draw_glasses(pen, f, tint)
    # draw on a supersampled copy of the canvas region, so alpha blends with what is below
    patch = canvas.crop((x0, y0, x1, y1)).resize(((x1 - x0) * ss, (y1 - y0) * ss), Image.Resampling.NEAREST)
    mask = Image.new("L", patch.size, 0)
    skin_mask = Image.new("L", patch.size, 0)
    pen.flush(ImageDraw.Draw(patch, "RGBA"), ImageDraw.Draw(mask), ImageDraw.Draw(skin_mask))
    rgb = _shade(np.asarray(patch.reduce(ss)), np.asarray(mask.reduce(ss)), np.asarray(skin_mask.reduce(ss)),
                 x0, y0, cx, cy, H, (pen.cyaw, pen.syaw), roll, light_gain, light_dir,
                 _modelling_spots(f, skin) * np.float32([1, 1, 1, 1, MODELLING]))
    canvas.paste(Image.fromarray(rgb, "RGB"), (x0, y0))
    return box


# --- backgrounds and camera ----------------------------------------------------------------------------
def render_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A cluttered, varied RGB background: a colour gradient, furniture-like boxes,
    frames, stripes, blobs and lines, sometimes out of focus (never face-like)."""
    if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))
            and width > 0 and height > 0):
        raise InvalidInputError(f"background size {width!r}x{height!r} must be positive ints")
    g = rng.random(8)
    c1 = 20 + 215 * g[:3]
    c2 = np.clip(c1 + rng.normal(0, 60, 3), 0, 255)
    ang = 2 * np.pi * g[3]
    gx = np.linspace(-0.5, 0.5, width, dtype=np.float32) * np.float32(math.cos(ang))
    gy = np.linspace(-0.5, 0.5, height, dtype=np.float32) * np.float32(math.sin(ang))
    t = np.clip(gx[None, :] + gy[:, None] + 0.5, 0, 1)[..., None]
    img = (c1.astype(np.float32) + t * (c2 - c1).astype(np.float32)).astype(np.uint8)
    im = Image.fromarray(img, "RGB")
    draw = ImageDraw.Draw(im, "RGBA")
    scale = max(width, height)
    n = 4 + int(g[4] * 8)
    P = rng.random((n, 12))
    for p in P:
        kind = int(p[0] * 5)
        col = (int(p[1] * 255), int(p[2] * 255), int(p[3] * 255), int(90 + 165 * p[4]))
        x, y = (p[5] * 1.1 - 0.1) * width, (p[6] * 1.1 - 0.1) * height
        w, h = (0.08 + 0.52 * p[7]) * scale, (0.08 + 0.52 * p[8]) * scale
        if kind == 0:      # box (shelf, window, picture)
            draw.rectangle([x, y, x + w, y + h], fill=col)
        elif kind == 1:    # frame outline
            draw.rectangle([x, y, x + w, y + h], outline=col, width=max(1, int(scale * (0.005 + 0.025 * p[9]))))
        elif kind == 2:    # stripes
            k = 3 + int(p[9] * 5)
            for j in range(k):
                if p[10] < 0.5:
                    draw.rectangle([x + j * w / k, y, x + j * w / k + w / (2 * k), y + h], fill=col)
                else:
                    draw.rectangle([x, y + j * h / k, x + w, y + j * h / k + h / (2 * k)], fill=col)
        elif kind == 3:    # a big soft blob (lamp, plant)
            draw.ellipse([x, y, x + w, y + h * 0.7], fill=col[:3] + (int(col[3] * 0.6),))
        else:              # lines (cables, edges)
            pts = [(x, y), (p[9] * width, p[10] * height), (p[11] * width, p[8] * height)]
            draw.line(pts, fill=col, width=max(1, int(scale * (0.004 + 0.011 * p[9]))))
    radius = float(g[5]) * 1.5 * scale / 160.0
    return _blur(im, radius) if radius > 0.3 else im


def _blur_array(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, 3) uint8 image in numpy (small sigmas);
    edges are replicated.  Returns uint8."""
    r = max(1, min(3, int(math.ceil(2.0 * sigma))))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w = (w / w.sum()).astype(np.float32)
    p = np.pad(a.astype(np.float32), ((r, r), (r, r), (0, 0)), mode="edge")
    h, wd = a.shape[:2]
    rows = p[:, r:r + wd] * w[r]
    for k in range(1, r + 1):
        rows += (p[:, r - k:r - k + wd] + p[:, r + k:r + k + wd]) * w[r + k]
    out = rows[r:r + h] * w[r]
    for k in range(1, r + 1):
        out += (rows[r - k:r - k + h] + rows[r + k:r + k + h]) * w[r + k]
    return np.clip(out + 0.5, 0, 255, out=out).astype(np.uint8)


def _blur(im: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur of a PIL image (numpy for small sigmas, PIL's GaussianBlur above)."""
    if sigma <= 1.5:
        return Image.fromarray(_blur_array(np.asarray(im), sigma), "RGB")
    return im.filter(ImageFilter.GaussianBlur(sigma))


# a fixed table of Gaussian noise; each photo reads it at a random offset (fast, deterministic)
_NOISE = np.random.default_rng(20240601).standard_normal((640, 640, 3), dtype=np.float32)


def apply_camera(image: np.ndarray, *, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on an RGB uint8 image: Gaussian blur (sigma ``blur`` pixels), then
    Gaussian sensor noise (std ``noise`` x 255).  Returns a new uint8 array."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"image must be an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
    out = image
    if blur > 0.05:
        out = _blur_array(out, float(blur)) if blur <= 1.5 else \
            np.asarray(Image.fromarray(out, "RGB").filter(ImageFilter.GaussianBlur(float(blur))))
    if noise > 0:
        h, w = out.shape[:2]
        if h <= _NOISE.shape[0] and w <= _NOISE.shape[1]:
            oy, ox = rng.integers(0, _NOISE.shape[0] - h + 1), rng.integers(0, _NOISE.shape[1] - w + 1)
            n = _NOISE[oy:oy + h, ox:ox + w] * np.float32(noise * 255.0)
        else:
            n = rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise * 255.0)
        n += out
        out = np.clip(n, 0, 255, out=n).astype(np.uint8)
    return np.array(out, copy=True) if out is image else out


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
