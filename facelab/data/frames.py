"""Video input: decoding a clip (or a folder of frame images) into RGB frames, as a stream.

:func:`iter_frames` decodes the video with PyAV in a background thread that stays a few
frames ahead (a bounded queue), never the whole clip in memory, and samples every ``k``-th
frame or a target frame rate.  Frames are ``H x W x 3`` uint8 **RGB** arrays
(:class:`Frame`: index, time, image).  A missing, truncated or non-video file, or one without
frames, raises :class:`facelab.errors.VideoDecodeError` naming it.
"""
from __future__ import annotations

import math
import queue
import re
import threading
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import av
import numpy as np

from facelab.errors import FacelabError, InvalidInputError, VideoDecodeError, short_message
from facelab.data.io import DEFAULT_MAX_PIXELS, list_images, load_image

#: A frame larger than this many pixels is refused before decoding (the image limit).
DEFAULT_MAX_FRAME_PIXELS = DEFAULT_MAX_PIXELS
#: Frames the background decoder may run ahead of the consumer (the bounded queue).
DEFAULT_PREFETCH = 4


def natural_key(path):
    """Sort key that orders ``frame2`` before ``frame10``."""
    name = Path(path).name
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class Frame(NamedTuple):
    """One sampled frame: its index in the clip (0-based, decoding order of displayed
    frames), its presentation time in seconds (NaN for a folder of frame images) and the
    ``H x W x 3`` uint8 RGB image."""

    index: int
    time: float
    image: np.ndarray


def check_sampling(every, fps) -> None:
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise InvalidInputError(f"every={every!r}: must be an integer >= 1 (keep every k-th frame)")
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (
            math.isfinite(fps) and fps > 0
        ):
            raise InvalidInputError(f"fps={fps!r}: must be a positive number of frames per second")
        if every != 1:
            raise InvalidInputError("pass either every=k or fps=..., not both")


class _Sampler:
    """Decides which decoded frames to keep: every k-th, or the first frame of each
    ``1 / fps`` second time slot."""

    def __init__(self, every: int, fps: float | None):
        self.every, self.fps = int(every), fps
        self.t0 = None
        self.last_slot = None

    def keep(self, index: int, time: float) -> bool:
        if self.fps is None:
            return index % self.every == 0
        if self.t0 is None:
            self.t0 = time
        slot = math.floor((time - self.t0) * self.fps + 1e-6)
        if slot == self.last_slot:
            return False
        self.last_slot = slot
        return True


def iter_frames(path, *, every: int = 1, fps: float | None = None,
                max_pixels: int = DEFAULT_MAX_FRAME_PIXELS, prefetch: int = DEFAULT_PREFETCH) -> Iterator[Frame]:
    """Stream the frames of a video file as :class:`Frame` ``(index, time, rgb)`` tuples.

    Parameters
    ----------
    path : str or Path
        A video file PyAV/FFmpeg can read, or a folder of frame images (AFEW is
        sometimes shipped that way; natural file-name order, ``time`` = NaN).
    every : int
        Keep frames ``0, k, 2k, ...`` (``every=1``: all frames).
    fps : float, optional
        Instead of ``every``: keep the first frame of each ``1/fps`` second slot.
    prefetch : int
        Decode in a background thread that runs up to ``prefetch`` sampled frames ahead
        (a bounded queue, so memory stays flat); ``0`` decodes in the calling thread.
        Errors are raised in the calling thread, in order, as without it.

    Raises
    ------
    VideoDecodeError
        The file is missing, not a video, audio-only, has zero frames, frames larger
        than ``max_pixels``, or is truncated/corrupt (also when fewer frames decode
        than the container declares).  The message names the file.  Because frames are
        streamed, an error found mid-way is raised after the frames before it.
    """
    check_sampling(every, fps)
    if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
        raise InvalidInputError(f"prefetch={prefetch!r}: must be an integer >= 0 (frames decoded ahead)")
    path = Path(path)
    if path.is_dir():
        source = lambda: _iter_frame_folder(path, every, fps)  # noqa: E731
    else:
        if not path.exists():
            raise VideoDecodeError(f"{path}: file not found; check the path")
        if not path.is_file():
            raise VideoDecodeError(f"{path}: not a regular file; pass a video file")
        if path.stat().st_size == 0:
            raise VideoDecodeError(f"{path}: empty file (0 bytes); re-copy or re-download the video")
        source = lambda: _iter_video_file(path, _Sampler(every, fps), max_pixels)  # noqa: E731
    yield from (_in_background(source, int(prefetch)) if prefetch else source())


def _in_background(make: Callable[[], Iterator], maxsize: int) -> Iterator:
    """Run the iterator ``make()`` in a background thread, at most ``maxsize`` items ahead.

    Items (and the error that ends the iterator, if any) arrive in order through a
    bounded queue.  When the consumer stops early, the thread is told to stop and the
    iterator is closed in its own thread (the video file is closed)."""
    items: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = make()
        try:
            for item in source:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
        finally:
            source.close()

    thread = threading.Thread(target=produce, name="facelab-decode", daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = items.get()
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()


def _iter_video_file(path: Path, sampler: _Sampler, max_pixels: int) -> Iterator[Frame]:

    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(f"{path}: cannot open as a video ({short_message(exc, 160)}); "
                               "the file is truncated, corrupt or not a video") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoDecodeError(f"{path}: no video stream (streams: {', '.join(kinds)}); "
                                   "pass a video file, not audio-only or other media")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-parallel decoding; still one frame out at a time
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > max_pixels:
            raise VideoDecodeError(f"{path}: frames of {width} x {height} pixels exceed the limit of "
                                   f"{max_pixels}; downscale the video or raise max_pixels")
        rate = float(stream.average_rate) if stream.average_rate else None
        declared = int(stream.frames or 0)
        n_decoded = 0
        try:
            for frame in container.decode(stream):
                index = n_decoded
                n_decoded += 1
                time = frame.time if frame.time is not None else (index / rate if rate else float("nan"))
                if not sampler.keep(index, time):
                    continue  # skipped frames are never converted to RGB
                if frame.width * frame.height > max_pixels:
                    raise VideoDecodeError(f"{path}: frame {index} of {frame.width} x {frame.height} "
                                           f"pixels exceeds the limit of {max_pixels}")
                yield Frame(index, float(time), frame.to_ndarray(format="rgb24"))
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            raise VideoDecodeError(f"{path}: video data is corrupt or truncated after {n_decoded} "
                                   f"frame(s) ({short_message(exc, 160)})") from None
    if n_decoded == 0:
        raise VideoDecodeError(f"{path}: the video stream has zero decodable frames; "
                               "the file is empty, truncated or corrupt")
    if declared and n_decoded < declared:
        raise VideoDecodeError(f"{path}: truncated video: decoded {n_decoded} of the {declared} "
                               "frames the container declares; re-copy the file")


def _iter_frame_folder(folder: Path, every: int, fps) -> Iterator[Frame]:
    if fps is not None:
        raise InvalidInputError(f"{folder}: a folder of frame images has no timestamps; use every=k, not fps")
    files = sorted(list_images(folder, recursive=False), key=natural_key)
    if not files:
        raise VideoDecodeError(f"{folder}: folder contains no frame images; pass a video file or a "
                               "folder of .jpg/.png frames")
    for index in range(0, len(files), every):
        try:
            image = load_image(files[index])
        except FacelabError as exc:
            raise VideoDecodeError(f"{folder}: frame {index} ({files[index].name}) is unreadable: {exc}") from None
        yield Frame(index, float("nan"), image)


__all__ = ["DEFAULT_MAX_FRAME_PIXELS", "DEFAULT_PREFETCH", "Frame", "check_sampling", "iter_frames", "natural_key"]
