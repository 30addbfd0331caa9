"""The parts of a face, each drawn with the pen in face coordinates (back to front in
:func:`facelab.synth.render.paint_face`): body, ears, head, skin marks, eyes, brows,
nose, mouth, and what a person wears on the face and head (glasses, hats).

Hair and facial hair are in :mod:`facelab.synth.hair`.
"""
from __future__ import annotations

import zlib

import numpy as np

from facelab.synth.people import Person
from facelab.synth.pen import CIRCLE, COVER, DEPTH, PERSON, SKIN, U7, U9, U11, U13, Pen, mix, scale_col
from facelab.synth.shape import FaceShape, outline_y, silhouette_x

# --- parts, back to front ------------------------------------------------------------------------
def draw_body(pen: Pen, person: Person, f: FaceShape, skin) -> None:
    """Shoulders in clothes, neck and collar (smaller for children)."""
    t = person.traits
    k = 1.0 - 0.3 * f.child
    tx = np.array([-0.2, -0.55, -1.05, -1.2, -1.25, 1.25, 1.2, 1.05, 0.55, 0.2]) * k
    ty = np.array([0.72, 0.8, 0.92, 1.15, 2.4, 2.4, 1.15, 0.92, 0.8, 0.72])
    pen.poly(tx, ty, t.clothes, z=-0.1, solid=PERSON)
    nw = 0.24 * (f.a / 0.46) * (1 - 0.2 * f.child)
    nx = np.array([-nw, -nw * 1.05, -nw * 1.5, nw * 1.5, nw * 1.05, nw])
    ny = np.array([0.2, 0.7, 0.84, 0.84, 0.7, 0.2])
    pen.poly(nx, ny, scale_col(skin, 0.78), z=0.0, solid=PERSON)
    pen.line(np.array([-0.55, -0.2, 0.0, 0.2, 0.55]) * k, np.array([0.80, 0.74, 0.92, 0.74, 0.80]),
             scale_col(t.clothes, 0.6), 0.8, 0.012, z=0.0)


def draw_ears(pen: Pen, person: Person, f: FaceShape, skin) -> None:
    """Ears at the head outline; the far ear slides behind the head as it turns."""
    t = person.traits
    y0 = (f.eye_y + f.nose_y) / 2 - 0.02
    h = 0.13 * t.ear_size * (1 + 0.12 * f.old) * (1 - 0.1 * f.child)
    w = 0.05 * t.ear_size * t.ear_out
    xl, xr = silhouette_x(pen, f, np.array([y0]))
    c8x, c8y = CIRCLE[12]
    for side, edge in ((-1, float(xl[0])), (1, float(xr[0]))):
        far = side * pen.syaw > 0          # the side the nose turns toward is the far side
        vis = 1.0 - 1.6 * abs(pen.syaw) if far else 1.0 + 0.8 * abs(pen.syaw)
        ex = edge - side * 0.012 + side * w * 0.55 * max(vis, -0.5)
        pen.poly(ex + w * 0.9 * c8x, y0 + h / 2 * c8y, scale_col(skin, 0.9), solid=SKIN, turned=True)
        pen.poly(ex + side * 0.004 + w * 0.45 * c8x, y0 + h * 0.32 * c8y, scale_col(skin, 0.72), 0.8,
                 turned=True)


def draw_head(pen: Pen, f: FaceShape, skin) -> None:
    y = outline_y(f)
    xl, xr = silhouette_x(pen, f, y)
    pen.poly(np.concatenate([xr, xl[::-1]]), np.concatenate([y, y[::-1]]), skin, solid=SKIN, turned=True)


def draw_skin_marks(pen: Pen, person: Person, f: FaceShape, skin) -> None:
    """Cheek blush, freckles, moles and lines; age lines grow smoothly with age and
    expression lines (forehead, frown, nasolabial, crow's feet) with the controls."""
    t = person.traits
    c = f.ctl
    blush = 0.18 * t.cheek_blush + 0.2 * f.child + 0.15 * c["cheek_raise"]
    cheek_y = f.nose_y - 0.02 - 0.03 * c["cheek_raise"]
    for side in (-1, 1):
        pen.blob(side * (f.eye_dx + 0.03), cheek_y + 0.01, 0.1, 0.07, (225, 110, 110), blush * 0.4)
        pen.blob(side * (f.eye_dx + 0.02), cheek_y - 0.005, 0.08, 0.05, mix(skin, (255, 240, 228), 0.25),
                 0.4 * c["cheek_raise"], steps=2)
    if t.freckles > 0:
        frng = np.random.default_rng(zlib.crc32(person.name.encode()))
        n = int(10 + 30 * t.freckles)
        pen.dots(frng.normal(0.0, 0.13, n), frng.normal(f.nose_y - 0.06, 0.05, n), 0.006,
                 scale_col(skin, 0.75), 0.45 * (1 - 0.6 * f.old))
    for (mx, my, mr) in t.moles:
        pen.ellipse(mx * f.a / 0.46, my, mr, mr, (70, 45, 35), 0.85, n=8)
    dark = scale_col(skin, 0.55)
    w = f.wrinkle
    raise_ = max(c["brow_inner_raise"], c["brow_outer_raise"])
    fore = 0.55 * w + 0.45 * raise_ * (0.4 + 0.6 * (1 - f.child))
    for i in range(3):
        yy = f.brow_y - 0.08 - 0.06 * i
        if yy < f.hairline + 0.03:
            break
        xs = (0.2 - 0.03 * i) * U7
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
        pen.line(side * (f.eye_dx + 0.05 * U7[1:-1]),
                 f.eye_y + f.eye_h * 0.6 + 0.035 - 0.01 * np.cos(1.5 * U7[1:-1]),
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


def _eye_curves(f: FaceShape, side: int, tilt: float):
    """Upper and lower lid curves of one eye, from the inner to the outer corner."""
    c = f.ctl
    u = U9                                     # -1 inner corner, +1 outer corner
    x = side * (f.eye_dx + u * f.eye_w / 2)
    cy = f.eye_y - tilt * u * 0.5 * f.eye_w
    up = f.eye_h * 0.62 * (1 + 0.75 * c["lid_raise"] - 0.55 * c["lid_droop"] - 0.12 * c["lid_tighten"]
                           - 0.15 * c["cheek_raise"])
    lo = f.eye_h * 0.42 * (1 + 0.35 * c["lid_raise"] - 0.6 * c["lid_tighten"] - 0.65 * c["cheek_raise"])
    yu = cy - up * (1 - u ** 2) ** 0.75 * (1 + 0.15 * u)       # peak slightly toward the inner side
    yl = cy + lo * (1 - u ** 2) ** 0.9 * (1 - 0.1 * u)
    return x, yu, yl


def draw_eyes(pen: Pen, person: Person, f: FaceShape, skin, hair, gaze) -> None:
    """Sclera, iris and pupil clipped by the lids, lash line, crease and lower lid."""
    t = person.traits
    dark = scale_col(skin, 0.55)
    lash = mix(scale_col(hair, 0.45), (20, 16, 14), 0.6)
    cxs, cys = CIRCLE[16]
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


def draw_brows(pen: Pen, person: Person, f: FaceShape) -> None:
    """Brows: inner raise (AU1), outer raise (AU2), lowering and knitting (AU4)."""
    t = person.traits
    c = f.ctl
    colour = mix(scale_col(t.hair_color, 0.7), (120, 118, 115), 0.4 * f.grey)
    colour = mix(colour, t.skin, 0.25 * f.child)
    u = (U7 + 1) / 2                          # 0 inner .. 1 outer
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


def draw_nose(pen: Pen, f: FaceShape, skin) -> None:
    """Nose bridge shadow, tip, wings and nostrils; wrinkled and widened by AU9/AU10."""
    c = f.ctl
    dark = scale_col(skin, 0.62)
    nw = f.nose_w * (1 + 0.2 * c["nose_wrinkle"] + 0.08 * c["upper_lip_raise"])
    ny = f.nose_y - 0.015 * c["nose_wrinkle"] - 0.01 * c["upper_lip_raise"]
    side = 1 if pen.syaw >= 0 else -1          # the bridge shadow shows more on the far side
    pen.line(np.array([0.03, 0.035, 0.045, nw * 0.9]) * side,
             np.array([f.eye_y + 0.02, f.eye_y + 0.09, ny - 0.06, ny - 0.015]),
             dark, 0.3 + 0.25 * abs(pen.syaw), 0.009,
             z=np.array([DEPTH - 0.03, DEPTH, DEPTH + 0.04, DEPTH + 0.02]))
    pen.ellipse(0.0, ny - 0.01, nw * 0.75, 0.032, scale_col(skin, 1.06), 0.65, z=DEPTH + 0.1, n=12)
    for s in (-1, 1):
        pen.ellipse(s * nw * 1.05, ny + 0.002, nw * 0.55, 0.026, scale_col(skin, 0.86), 0.55,
                    z=DEPTH + 0.03, n=12)
        pen.ellipse(s * nw * 0.55, ny + 0.016, nw * 0.32, 0.011, (60, 35, 30), 0.8, z=DEPTH + 0.05,
                    rot=s * 0.35, n=8)
    pen.line(nw * 0.6 * U7[1:-1], ny + 0.035, dark, 0.25, 0.008, z=DEPTH + 0.02)
    if c["nose_wrinkle"] > 0.02:
        for k in range(3):
            yy = f.eye_y + 0.045 + 0.018 * k
            pen.line(np.array([-0.035, 0.0, 0.035]), np.array([yy + 0.006, yy, yy + 0.006]), dark,
                     0.75 * c["nose_wrinkle"], 0.006, z=DEPTH)


def mouth_curves(f: FaceShape):
    """Lip curves (x from the left to the right corner): outer upper, inner upper,
    inner lower, outer lower, and the mouth opening."""
    c = f.ctl
    t = U13
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


def draw_mouth(pen: Pen, person: Person, f: FaceShape, skin) -> None:
    """Lips, the open mouth with teeth, the lip line and corner dimples."""
    c = f.ctl
    x, y_out_up, y_in_up, y_in_lo, y_out_lo, opening = mouth_curves(f)
    z = pen.zsurf(x) + 0.04 * (1 - U13 ** 2)
    zz = np.concatenate([z, z[::-1]])
    xx = np.concatenate([x, x[::-1]])
    lip = person.traits.lip_color
    pen.line(0.05 * U7[1:-1], f.chin - 0.09 + 0.01 * np.cos(1.5 * U7[1:-1]), scale_col(skin, 0.7),
             0.2 + 0.3 * c["chin_raise"], 0.008)
    pen.poly(xx, np.concatenate([y_out_up, y_in_up[::-1]]), scale_col(lip, 0.78), z=zz)
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
                 np.array([line_y[i] - 0.012, line_y[i] + 0.01]), scale_col(skin, 0.6), min(0.8, dimple), 0.007)


def draw_glasses(pen: Pen, f: FaceShape, tint: float) -> None:
    """Glasses: round-ish frames, a bridge and temple arms (an occluder over the eyes)."""
    frame = mix((25, 22, 20), (120, 90, 60), tint)
    lens_w = f.eye_w * 0.78 + 0.02
    lens_h = max(f.eye_h, 0.05) * 0.9 + 0.04
    zg = DEPTH + 0.04
    cx24, cy24 = CIRCLE[24]
    for s in (-1, 1):
        lx = s * f.eye_dx + lens_w * cx24
        ly = f.eye_y + 0.005 + lens_h * cy24
        pen.poly(lx, ly, (200, 215, 230), 0.12, z=zg)
        pen.line(np.append(lx, lx[0]), np.append(ly, ly[0]), frame, 0.95, 0.014, z=zg)
        pen.line(np.array([s * (f.eye_dx + lens_w), s * f.a]), np.array([f.eye_y - 0.01, f.eye_y - 0.03]),
                 frame, 0.9, 0.012, z=np.array([zg, 0.0]))
    pen.line(np.array([-(f.eye_dx - lens_w), 0.0, f.eye_dx - lens_w]),
             np.array([f.eye_y - 0.01, f.eye_y - 0.025, f.eye_y - 0.01]), frame, 0.95, 0.012, z=zg)


def draw_hat(pen: Pen, f: FaceShape, colour, kind: int) -> None:
    """A knit beanie (kind 0) or a cap with a brim (kind 1) over the skull."""
    band = f.brow_y - (0.24 if kind == 0 else 0.27)
    y = np.linspace(f.top, band, 12)
    xl, xr = silhouette_x(pen, f, y)
    lift = 0.05 * np.clip(1 - (y - f.top) / 0.4, 0, 1) + 0.01     # a hat sits on the hair
    pen.poly(np.concatenate([xl - 0.03, xr[::-1] + 0.03]), np.concatenate([y - lift, (y - lift)[::-1]]), colour,
             solid=COVER, turned=True)
    dark = scale_col(colour, 0.7)
    if kind == 0:   # the folded rim of a knit beanie, and its ribs
        pen.line(np.linspace(xl[-1] - 0.03, xr[-1] + 0.03, 9), band - 0.07, dark, 0.8, 0.012, turned=True)
        for u in (-0.6, -0.3, 0.0, 0.3, 0.6):
            pen.line(np.array([u * f.a * 0.8, u * f.a * 0.9]), np.array([band - 0.02, band - 0.06]),
                     dark, 0.5, 0.006)
    else:
        bx = U11 * f.a * 0.95
        by = band + 0.015 + 0.03 * (1 - U11 ** 2)
        pen.poly(np.concatenate([bx, bx[::-1]]), np.concatenate([by, np.full(11, band - 0.01)]), dark,
                 z=DEPTH + 0.06)
