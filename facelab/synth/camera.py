"""Light and camera of the face world: the light on a painted person (a gain, a side
light, rim darkening and the soft modelling of the face), cluttered backgrounds, and
the camera's blur and sensor noise.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facelab.errors import InvalidInputError
from facelab.synth.pen import Pen, luminance
from facelab.synth.shape import FaceShape


# --- light on the person ---------------------------------------------------------------------------------
def modelling_spots(f: FaceShape, skin) -> np.ndarray:
    """Soft light and shade of a rounded, lit face as Gaussian spots in face
    coordinates: rows (x, y, sigma_x, sigma_y, amplitude); the skin is multiplied by
    1 + sum of the spots.  Darker skin gets a stronger sheen, as in photos."""
    sheen = 0.6 + 1.0 * (1.0 - luminance(skin))
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


MODELLING = 1.5   # strength of the face modelling (light and shade spots)


def shade(rgb: np.ndarray, mask: np.ndarray, skin: np.ndarray, ox: float, oy: float, cx: float, cy: float,
          h: float, pen_yaw: tuple[float, float], roll_deg: float, gain: float, light_dir: float,
          spots: np.ndarray) -> np.ndarray:
    """Light the person: gain x a horizontal light gradient x rim darkening inside
    the person ``mask``, times the face modelling (:func:`modelling_spots`) inside the
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
        x = (X - Pen.zsurf(x) * syaw) / cyaw
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


def blur_array(a: np.ndarray, sigma: float) -> np.ndarray:
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
        return Image.fromarray(blur_array(np.asarray(im), sigma), "RGB")
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
        out = blur_array(out, float(blur)) if blur <= 1.5 else \
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
