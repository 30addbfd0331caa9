"""Hair and facial hair of a face: hair behind the head, stubble and beards, moustaches
and goatees, and the hair over the skull, temples and face (styles of
:data:`facelab.synth.people.HAIR_STYLES` and :data:`~facelab.synth.people.FACIAL_HAIR`).
"""
from __future__ import annotations

import numpy as np

from facelab.synth.parts import mouth_curves
from facelab.synth.people import FACIAL_HAIR, HAIR_STYLES, Person
from facelab.synth.pen import CIRCLE, COVER, PERSON, U9, U11, Pen, mix, scale_col, smoothstep
from facelab.synth.shape import FaceShape, half_width, outline_y, silhouette_x


def draw_back_hair(pen: Pen, person: Person, f: FaceShape, age: float, hair) -> None:
    """Long, bob and curly hair behind the head and neck."""
    style = HAIR_STYLES[person.traits.hair_style]
    if style not in ("long", "curly", "bob"):
        return
    reach, width = {"long": (1.05, 0.13), "bob": (0.4, 0.08), "curly": (0.3, 0.16)}[style]
    grow = smoothstep(0.0, 6.0, age)             # toddlers' hair is still short
    if grow <= 0.05:
        return
    reach = 0.1 + (reach - 0.1) * grow
    width *= grow
    y = outline_y(f)
    y = y[y < 0.1]
    xl, xr = silhouette_x(pen, f, y)
    xs = np.concatenate([xl - width, [xl[-1] - width - 0.04, xr[-1] + width + 0.04], xr[::-1] + width])
    ys = np.concatenate([y - width * 0.6, [reach, reach], y[::-1] - width * 0.6])
    pen.poly(xs, ys, scale_col(hair, 0.8), solid=PERSON, turned=True)


def _beard_amount(person: Person, age: float) -> tuple[str, float]:
    if person.gender != 0:
        return "none", 0.0
    return FACIAL_HAIR[person.traits.facial_hair], smoothstep(15.0, 23.0, age)


def draw_beard(pen: Pen, person: Person, f: FaceShape, age: float, hair, skin) -> None:
    """Stubble or a short full beard along the jaw and round the mouth (drawn before
    the mouth), leaving the cheeks bare; a soft outer layer and a denser inner one."""
    style, grow = _beard_amount(person, age)
    if style not in ("stubble", "beard") or grow <= 0:
        return
    col = mix(scale_col(hair, 0.75), skin, 0.15)
    mw = f.mouth_w
    for y_side, inset, alpha in ((f.eye_y + 0.08, 0.0, 0.4), (f.eye_y + 0.16, 0.012, 0.55)):
        if style == "stubble":
            alpha *= 0.4
        y = np.linspace(y_side, f.chin, 14)
        xl, xr = silhouette_x(pen, f, y)
        xl, xr = xl + inset, xr - inset
        hw0 = float(half_width(f, np.array([y_side]))[0]) - 0.01
        # upper edge: sideburn -> down the cheek to below the mouth corner -> up to the upper lip
        bx = np.array([hw0, hw0 * 0.8, mw + 0.07, mw + 0.02, mw * 0.5, 0.0])
        by = np.array([y_side, f.nose_y + 0.02, f.mouth_y + 0.02, f.mouth_y - 0.03, f.nose_y + 0.045,
                       f.nose_y + 0.05])
        ux = np.concatenate([-bx, bx[::-1][1:]])                      # left sideburn -> right sideburn
        uy = np.concatenate([by, by[::-1][1:]])
        pen.poly(np.concatenate([xr, xl[::-1], pen.turn(ux)]), np.concatenate([y, y[::-1], uy]), col,
                 alpha * grow, turned=True)


def draw_moustache(pen: Pen, person: Person, f: FaceShape, age: float, hair) -> None:
    """Moustache and goatee (after the mouth; the lower lip stays visible)."""
    style, grow = _beard_amount(person, age)
    if style not in ("moustache", "goatee", "beard") or grow <= 0:
        return
    col = scale_col(hair, 0.8)
    x, y_out_up, _, _, y_out_lo, _ = mouth_curves(f)
    mw = f.mouth_w
    mx = mw * 1.05 * U9
    top = np.interp(mx, x, y_out_up) - 0.035 + 0.012 * np.abs(mx / mw) ** 2
    bot = np.interp(mx, x, y_out_up) + 0.006 + 0.02 * np.abs(mx / mw) ** 3
    pen.poly(np.concatenate([mx, mx[::-1]]), np.concatenate([top, bot[::-1]]), col, 0.92 * grow)
    if style == "goatee":
        gx = mw * 0.62 * U9
        top = np.interp(gx, x, y_out_lo) + 0.006
        bot = f.chin - 0.008 - 0.06 * U9 ** 2                # follows the round of the chin
        pen.poly(np.concatenate([gx, gx[::-1] * 0.8]), np.concatenate([top, bot[::-1]]),
                 mix(col, person.traits.skin, 0.15), 0.8 * grow)


_VOLUME = {"buzz": 0.008, "short": 0.035, "side_part": 0.04, "bob": 0.05, "long": 0.045, "curly": 0.11,
           "bun": 0.025}


def draw_front_hair(pen: Pen, person: Person, f: FaceShape, age: float, hair, hat: bool) -> None:
    """Hair over the skull down to the hairline (which recedes for balding men),
    hair over the temples, locks that frame the face, a bun or curls."""
    t = person.traits
    style = HAIR_STYLES[t.hair_style]
    baby = smoothstep(0.0, 6.0, age)          # babies and toddlers have little hair
    bald_top = min(1.0, max(0.0, t.balding * 1.3 * smoothstep(40.0, 80.0, age) - 0.25))
    volume = _VOLUME[style] * (0.4 + 0.6 * baby)
    alpha = (0.55 if style == "buzz" else 0.97) * (0.35 + 0.65 * baby)
    side_alpha = alpha
    alpha *= 1 - 0.85 * bald_top
    # hairline across the forehead (turns with the face)
    fringe = {"bob": 0.1, "curly": 0.02, "short": 0.015}.get(style, 0.0) * baby
    temple_drop = 0.12 - 0.1 * t.balding * smoothstep(25.0, 60.0, age)
    u = U11
    hx = u * f.a * 0.98
    hy = f.hairline + fringe + temple_drop * np.abs(u) ** 2.5
    if style == "side_part":
        hy = hy + 0.04 * u - 0.03 * np.cos(u * np.pi / 2)
    hy = hy + 0.06 * t.balding * smoothstep(28.0, 60.0, age) * np.exp(-((np.abs(u) - 0.55) / 0.22) ** 2)
    hxt = pen.turn(hx)
    # outer edge: the skull outline pushed out by the hair volume, from temple to temple
    y_l = np.linspace(hy[0], f.top, 10)
    y_r = np.linspace(f.top, hy[-1], 10)
    xl, _ = silhouette_x(pen, f, y_l)
    _, xr = silhouette_x(pen, f, y_r)
    lift_l = volume * 1.2 * np.clip(1 - (y_l - f.top) / 0.5, 0, 1)
    lift_r = volume * 1.2 * np.clip(1 - (y_r - f.top) / 0.5, 0, 1)
    cap_x = np.concatenate([xl - volume, xr + volume, hxt[::-1]])
    cap_y = np.concatenate([y_l - lift_l, y_r - lift_r, hy[::-1]])
    if not hat:
        pen.poly(cap_x, cap_y, hair, alpha, solid=COVER if alpha > 0.5 else 0, turned=True)
    # hair over the temples (kept by balding men: the "horseshoe")
    for s in (-1, 1):
        yy = np.linspace(hy[-1 if s > 0 else 0] - 0.08, f.eye_y - 0.02, 5)
        el, er = silhouette_x(pen, f, yy)
        edge = er if s > 0 else el
        inner = pen.turn(s * (half_width(f, yy) - 0.045))
        pen.poly(np.concatenate([edge + s * volume * 0.6, inner[::-1]]), np.concatenate([yy, yy[::-1]]),
                 hair, side_alpha * (0.9 if hat else 1.0), solid=COVER, turned=True)
    if style in ("bob", "long") and baby > 0.2:
        reach = 0.42 if style == "bob" else 0.75
        reach = f.eye_y + (reach - f.eye_y) * baby
        yy = np.linspace(f.eye_y - 0.1, reach, 7)
        el, er = silhouette_x(pen, f, np.minimum(yy, f.chin - 0.05))
        bulge = 0.03 + 0.02 * np.sin(np.linspace(0, np.pi, 7))
        for s, edge in ((-1, el), (1, er)):
            outer = edge + s * 0.07
            inner = np.where(yy > f.chin - 0.1, outer - s * 0.05, edge - s * bulge)
            pen.poly(np.concatenate([outer, inner[::-1]]), np.concatenate([yy, yy[::-1]]), scale_col(hair, 0.95),
                     0.95, solid=COVER, turned=True)
    if hat:
        return
    cx16, cy16 = CIRCLE[12]
    if style == "bun":
        bx = float(pen.turn(np.array([0.0]), z=np.array([-0.1]))[0])
        pen.poly(bx + 0.13 * cx16, f.top - 0.02 + 0.11 * cy16, scale_col(hair, 0.9), baby, solid=COVER,
                 turned=True)
    if style == "curly":
        n_out = len(y_l) + len(y_r)
        for i in range(0, n_out, 2):
            pen.poly(cap_x[i] + 0.045 * cx16, cap_y[i] + 0.045 * cy16, hair, alpha,
                     solid=COVER if alpha > 0.5 else 0, turned=True)
    if alpha > 0.3 and style != "buzz":
        dark = scale_col(hair, 0.7)
        for k in range(5):
            uu = -0.7 + 0.35 * k
            pen.line(np.array([uu * f.a * 0.9, uu * f.a * 0.7 + 0.02, uu * f.a * 0.4]),
                     np.array([f.hairline + 0.02, f.hairline - 0.12, f.top + 0.1]), dark, 0.45 * alpha, 0.008, z=0.1)
