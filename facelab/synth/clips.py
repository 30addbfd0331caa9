"""Synthetic video clips of the face world, written as real video files with PyAV.

* :func:`render_single_clip` -- one person (AFEW-like): the expression rises from
  neutral to an apex and falls back (:func:`expression_curve`), the head turns,
  tilts and drifts, and every frame gets fresh camera noise.
* :func:`render_group_clip` -- 2..6 people (VGAF-like), each with an emotion and
  mild motion; the clip's group label is ``labels.group_label(member emotions)``.
* :func:`write_clip` (:mod:`facelab.synth.encoding`) -- streams frames into a video
  file with reproducible bytes.
* :func:`render_crowd_clip`, :func:`write_crowd_clip` (:mod:`facelab.synth.crowd`) -- a
  moving crowd with known truth, for face tracking (re-exported here).

Frames are ``H x W x 3`` uint8 **RGB** numpy arrays.  Every generator is
deterministic given its ``rng`` (a ``numpy.random.Generator``).
"""
from __future__ import annotations

import math

import numpy as np

from facelab.errors import InvalidInputError
from facelab.labels import EMOTIONS_8, group_label
from facelab.synth.camera import apply_camera, render_background
from facelab.synth.crowd import (
    CROWD_INTENSITY_LEVELS,
    CROWD_YAW_STEP,
    CrowdFace,
    CrowdFrame,
    render_crowd_clip,
    write_crowd_clip,
)
from facelab.synth.encoding import CODECS, write_clip
from facelab.synth.people import Person
from facelab.synth.render import paint_face, sample_nuisance


# --- motion and expression over time ---------------------------------------------------------

#: Where the expression apex of a single-person clip lies (fractions of the clip, uniform).
#: Real AFEW clips are cut around a line of dialogue found through the subtitles, not
#: centred on the facial expression, so the apex can come early or late: the middle
#: frame then shows a weaker, partly neutral face and a clip descriptor has to find the
#: apex.  (Face-world format v2 used (0.35, 0.65), which made the middle frame nearly
#: always the apex.)
APEX_RANGE = (0.15, 0.85)


def expression_curve(n_frames: int, *, apex: float = 0.5, peak: float = 1.0, onset: float = 0.15,
                     width: float = 0.35) -> np.ndarray:
    """Expression intensity per frame: neutral, rise to ``peak`` at frame ``apex * (n-1)``, fall back.

    A raised-cosine bump of half-width ``width`` (fraction of the clip) starting no
    earlier than ``onset``; values in [0, peak], exactly ``peak`` at the apex frame.
    """
    if n_frames < 1:
        raise InvalidInputError(f"n_frames={n_frames!r} must be >= 1")
    t = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.array([apex])
    a = min(max(apex, onset), 1.0)
    x = np.clip((t - a) / max(width, 1e-6), -1.0, 1.0)
    curve = peak * 0.5 * (1.0 + np.cos(np.pi * x))
    if n_frames > 1:
        curve[int(round(a * (n_frames - 1)))] = peak
    return np.clip(curve, 0.0, 1.0)


def sample_expression_curve(rng: np.random.Generator, n_frames: int, peak: float) -> np.ndarray:
    """The expression curve of one single-person clip: apex uniform in :data:`APEX_RANGE`,
    bump half-width uniform in [0.25, 0.45] of the clip."""
    return expression_curve(n_frames, apex=float(rng.uniform(*APEX_RANGE)), peak=peak,
                            width=float(rng.uniform(0.25, 0.45)))


def _wander(rng, n_frames: int, amplitude: float, cycles=(0.3, 1.2)) -> np.ndarray:
    """A smooth random motion track: a sinusoid with random frequency and phase."""
    f = rng.uniform(*cycles)
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(n_frames) / max(n_frames - 1, 1)
    return amplitude * np.sin(2 * np.pi * f * t + phase)


# --- single person (AFEW-like) -----------------------------------------------------------------


def render_single_clip(person: Person | None, emotion: str = "Neutral", *, n_frames: int = 30,
                       size: int = 112, age: float = 30.0, rng: np.random.Generator | None = None,
                       nuisance_level: float = 0.8, peak: float | None = None):
    """Frames of one person whose ``emotion`` rises to an apex and falls back.

    Head motion (yaw / roll oscillation, position drift) and per-frame camera noise
    vary with ``rng``.  ``person=None`` renders the same kind of clip with NO face
    (background and camera only), for pipelines that must cope with faceless video.
    Yields ``size x size x 3`` uint8 RGB frames (``size`` must be even).
    """
    _check_clip_args(n_frames, size, emotion)
    rng = rng if rng is not None else np.random.default_rng(0)
    nz = sample_nuisance(rng, nuisance_level)
    background = render_background(np.random.default_rng(nz.background_seed), size, size)
    peak = float(rng.uniform(0.7, 1.0)) if peak is None else float(peak)
    curve = sample_expression_curve(rng, n_frames, peak)
    yaw = np.clip(nz.yaw * 0.6 + _wander(rng, n_frames, 10.0), -35, 35)
    roll = np.clip(nz.roll * 0.6 + _wander(rng, n_frames, 4.0), -18, 18)
    dx = nz.dx + _wander(rng, n_frames, 0.03)
    dy = nz.dy + _wander(rng, n_frames, 0.02)
    face_rng_seed = int(rng.integers(2**31 - 1))
    for k in range(n_frames):
        canvas = background.copy()
        if person is not None:
            paint_face(canvas, person, age=age, emotion=emotion, intensity=float(curve[k]),
                       center=(size * (0.5 + dx[k]), size * (0.53 + dy[k])), face_height=nz.scale * size,
                       yaw=float(yaw[k]), roll=float(roll[k]), light_gain=nz.light_gain,
                       light_dir=nz.light_dir, glasses=nz.glasses, hat=nz.hat,
                       rng=np.random.default_rng(face_rng_seed))  # same gaze/hat colour every frame
        yield apply_camera(np.asarray(canvas), blur=nz.blur * size / 112.0, noise=max(nz.noise, 0.004),
                           rng=rng)


# --- group (VGAF-like) -----------------------------------------------------------------------


def group_clip_label(emotions) -> str:
    """The VGAF group label of a clip whose members show ``emotions`` (labels.group_label)."""
    return group_label(emotions)


def _group_layout(n: int, width: int, height: int, rng):
    """Face centres and heights for ``n`` people: one row up to 3 people, else two rows."""
    rows = 1 if n <= 3 else 2
    per_row = [math.ceil(n / rows), n - math.ceil(n / rows)] if rows == 2 else [n]
    slots = []
    for r, count in enumerate(per_row):
        cell_w = width / count
        cell_h = height / rows
        h = min(cell_h * 0.52, cell_w * 0.62)
        for c in range(count):
            cx = cell_w * (c + 0.5) + rng.uniform(-0.08, 0.08) * cell_w
            cy = cell_h * (r + 0.45) + rng.uniform(-0.05, 0.05) * cell_h
            slots.append((cx, cy, h * rng.uniform(0.85, 1.05)))
    return slots


def render_group_clip(people, emotions, *, n_frames: int = 30, height: int = 128, width: int | None = None,
                      ages=None, rng: np.random.Generator | None = None):
    """Frames of a group: ``people[i]`` shows ``emotions[i]`` with mild motion.

    Each member's expression follows its own :func:`expression_curve` (apex and peak
    jittered); the label of the clip is ``labels.group_label(emotions)``.  Frame size
    ``height`` x ``width`` (default 16:9), both even.  Yields uint8 RGB frames.
    """
    people, emotions = list(people), list(emotions)
    if not 1 <= len(people) <= 8 or len(people) != len(emotions):
        raise InvalidInputError(f"a group clip needs 1..8 people with one emotion each, got "
                                f"{len(people)} people and {len(emotions)} emotions")
    width = int(width or 2 * round(height * 16 / 9 / 2))
    for e in emotions:
        _check_clip_args(n_frames, height, e)
    if width % 2:
        raise InvalidInputError(f"width={width} must be even (yuv420p video)")
    rng = rng if rng is not None else np.random.default_rng(0)
    ages = list(ages) if ages is not None else [float(rng.uniform(18, 70)) for _ in people]
    background = render_background(rng, width, height)
    slots = _group_layout(len(people), width, height, rng)
    order = sorted(range(len(people)), key=lambda i: slots[i][1])  # back row first
    tracks = []
    for i in range(len(people)):
        cx, cy, h = slots[i]
        tracks.append(dict(
            curve=expression_curve(n_frames, apex=float(rng.uniform(0.3, 0.7)), peak=float(rng.uniform(0.7, 1.0)),
                                   width=float(rng.uniform(0.3, 0.5))),
            yaw=np.clip(rng.normal(0, 10) + _wander(rng, n_frames, 6.0), -30, 30),
            roll=np.clip(rng.normal(0, 4) + _wander(rng, n_frames, 3.0), -15, 15),
            x=cx + _wander(rng, n_frames, 0.04 * h), y=cy + _wander(rng, n_frames, 0.03 * h), h=h,
            glasses=bool(rng.uniform() < 0.12), seed=int(rng.integers(2**31 - 1))))
    light_gain, light_dir = float(rng.uniform(0.85, 1.15)), float(rng.uniform(-1, 1))
    blur, noise = float(rng.uniform(0, 0.5)), float(rng.uniform(0.004, 0.02))
    for k in range(n_frames):
        canvas = background.copy()
        for i in order:
            t = tracks[i]
            paint_face(canvas, people[i], age=ages[i], emotion=emotions[i], intensity=float(t["curve"][k]),
                       center=(float(t["x"][k]), float(t["y"][k])), face_height=t["h"], yaw=float(t["yaw"][k]),
                       roll=float(t["roll"][k]), light_gain=light_gain, light_dir=light_dir,
                       glasses=t["glasses"], rng=np.random.default_rng(t["seed"]))
        yield apply_camera(np.asarray(canvas), blur=blur, noise=noise, rng=rng)


def _check_clip_args(n_frames, size, emotion):
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise InvalidInputError(f"n_frames={n_frames!r} must be an int >= 1")
    if not isinstance(size, (int, np.integer)) or size < 16 or size % 2:
        raise InvalidInputError(f"size={size!r} must be an even int >= 16 (pixels; yuv420p video)")
    if emotion not in EMOTIONS_8:
        raise InvalidInputError(f"emotion={emotion!r} is unknown; use one of {', '.join(EMOTIONS_8)}")


__all__ = ["CODECS", "APEX_RANGE", "write_clip", "expression_curve", "sample_expression_curve", "render_single_clip",
           "render_group_clip", "group_clip_label", "CROWD_YAW_STEP", "CROWD_INTENSITY_LEVELS", "CrowdFace",
           "CrowdFrame", "render_crowd_clip", "write_crowd_clip"]
