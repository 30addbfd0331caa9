"""The pen of the face renderer: a display list in face coordinates, drawn with PIL.

Face coordinates: the unit is the face-box height (brows to chin, like a detector
box), the origin is the box centre, y points down and z points out of the face toward
the camera.  A head turn (yaw) moves each point by its depth, ``x' = x cos(yaw) + z
sin(yaw)``, so the far side of the face narrows; a head tilt (roll) rotates the result.
Shapes are recorded, projected in one numpy batch and drawn in order (:class:`Pen`);
the small colour and interpolation helpers the parts share live here too.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw


# --- small numeric and colour helpers ------------------------------------------------------------------
def as_number(value) -> float:
    """``float(value)``, or NaN when ``value`` is not a number (so one range check rejects both)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def smoothstep(a: float, b: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - a) / (b - a)))
    return t * t * (3.0 - 2.0 * t)


def mix(c1, c2, t: float):
    return tuple(a * (1 - t) + b * t for a, b in zip(c1, c2))


def scale_col(c, k: float):
    return tuple(min(255.0, max(0.0, v * k)) for v in c)


def luminance(c) -> float:
    return (0.3 * c[0] + 0.59 * c[1] + 0.11 * c[2]) / 255.0


CIRCLE = {n: (np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
              np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))) for n in (8, 12, 16, 24)}
U7, U9, U11, U13 = (np.linspace(-1.0, 1.0, n) for n in (7, 9, 11, 13))
_ONES = np.ones(512)
_NAN = np.full(512, np.nan)
_NAN.setflags(write=False)
_ONES.setflags(write=False)
DEPTH = 0.36          # how far the face front sits in front of the head's vertical axis


PERSON, SKIN, COVER = 1, 2, 3     # mask codes of solid shapes (see Pen.poly)


# --- the pen: a display list in face coordinates ------------------------------------------------
class Pen:
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
        return DEPTH * np.sqrt(np.maximum(1.0 - 4.0 * x * x, 0.0)) - 0.05

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
        c, s = CIRCLE[n]
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

