"""The face model: identity traits + age + expression controls -> the shape of one face.

:func:`face_shape` turns a :class:`~facelab.synth.people.Person`, an age in years and
the action controls (:mod:`facelab.synth.expressions`) into :class:`FaceShape`, the
shape parameters in face coordinates (:mod:`facelab.synth.pen`); every parameter is
smooth in age.  The head outline (:func:`half_width`, :func:`silhouette_x`) and the
skin and hair colours after age follow from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelab.synth.people import Person
from facelab.synth.pen import DEPTH, Pen, mix, scale_col, smoothstep

# --- the face model: identity + age + expression -> shape parameters ----------------------
@dataclass
class FaceShape:
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


def face_shape(person: Person, age: float, ctl: dict[str, float]) -> FaceShape:
    """Identity traits + age + action controls -> face shape (all smooth in age)."""
    t = person.traits
    child = 1.0 - smoothstep(1.0, 17.0, age)
    old = smoothstep(35.0, 92.0, age)
    wrinkle = min(1.3, t.wrinkle_prone * smoothstep(24.0, 88.0, age))
    grey = 1.0 / (1.0 + math.exp(-(age - t.grey_onset) / 6.5))
    eye_y = -0.115 + 0.045 * child
    eye_w = t.eye_size * (1 + 0.24 * child)
    nose_len = t.nose_length * (1 - 0.4 * child) * (1 + 0.05 * old)
    nose_y = eye_y + 0.235 * nose_len
    mouth_y = nose_y + 0.155 - 0.035 * child + 0.012 * old
    lip_k = (1 - 0.3 * old) * (1 - 0.6 * ctl["lip_press"]) * (1 - 0.25 * ctl["lip_stretch"])
    recede = t.balding * 0.3 * smoothstep(22.0, 65.0, age)
    return FaceShape(
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


def half_width(f: FaceShape, y) -> np.ndarray:
    """Half width of the head outline at heights y (from a table made once per face)."""
    if f.hw_table is None:   # the skull part of the grid does not depend on the jaw (chin)
        f.hw_table = np.concatenate([_half_width_exact(f, _HW_GRID * (_JAW_Y - f.top) + f.top),
                                     _half_width_exact(f, _HW_GRID * (f.chin - _JAW_Y) + _JAW_Y)])
    grid = np.concatenate([_HW_GRID * (_JAW_Y - f.top) + f.top, _HW_GRID * (f.chin - _JAW_Y) + _JAW_Y])
    return np.interp(y, grid, f.hw_table)


_HW_GRID = np.linspace(0.0, 1.0, 81)
_JAW_Y = -0.02                             # where the jaw starts (see _half_width_exact)


def _half_width_exact(f: FaceShape, y: np.ndarray) -> np.ndarray:
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


def silhouette_x(pen: Pen, f: FaceShape, y: np.ndarray):
    """Turned left and right outline x at heights y.  Each height is an elliptic
    section; below the eyes its front stays at the face surface, so the chin turns
    with the face while the skull turns about its own centre."""
    hw = half_width(f, y)
    d = hw * (DEPTH / f.a)
    zc = np.clip((y + 0.25) / 0.35, 0.0, 1.0) * (DEPTH - d)
    half = np.sqrt((hw * pen.cyaw) ** 2 + (d * pen.syaw) ** 2)
    centre = zc * pen.syaw
    return centre - half, centre + half


_SKULL_S = 1 - np.cos(np.linspace(0.0, np.pi / 2, 15))
_JAW_S = np.sin(np.linspace(0.0, np.pi / 2, 12))[1:]


def outline_y(f: FaceShape) -> np.ndarray:
    """Heights sampling the head outline: the skull down to the jaw start (fixed,
    whatever the expression), then the jaw to the chin."""
    return np.concatenate([f.top + (_JAW_Y - f.top) * _SKULL_S, _JAW_Y + (f.chin - _JAW_Y) * _JAW_S])


# --- colours -----------------------------------------------------------------------------------
def skin_colour(person: Person, f: FaceShape):
    skin = person.traits.skin
    skin = mix(skin, scale_col(skin, 1.03), f.child * 0.5)
    return mix(skin, (skin[0] * 0.97, skin[1] * 0.95, skin[2] * 0.88), f.old * 0.6)


def hair_colour(person: Person, f: FaceShape):
    return mix(person.traits.hair_color, (186.0, 184.0, 180.0), 0.9 * f.grey)
