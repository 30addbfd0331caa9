"""Encoding frames of the face world into real video files with PyAV.

:func:`write_clip` streams frames into an encoder (never all frames in memory):
``.mp4`` -> H.264 (libx264), ``.avi`` -> MPEG-4 part 2; yuv420p, fixed fps,
single-threaded encoders so that the same frames give byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from facelab.errors import InvalidInputError

#: Encoder settings per container: (codec, options).  Fixed so output is reproducible.
#: x264 runs single-threaded and without its rate-control lookahead / macroblock tree:
#: with them on, the same frames gave a different file in about 1 of 30 runs here.
CODECS = {
    ".mp4": ("libx264", {"preset": "veryfast", "crf": "23", "threads": "1",
                         "x264-params": "rc-lookahead=0:mbtree=0:sync-lookahead=0"}),
    ".avi": ("mpeg4", {}),
}


# --- writing ----------------------------------------------------------------------------------


def write_clip(path, frames, fps: int = 15, *, bit_rate: int = 800_000) -> int:
    """Encode ``frames`` (an iterable of equal-size H x W x 3 uint8 RGB arrays) into ``path``.

    The codec follows the extension (:data:`CODECS`); H and W must be even (yuv420p).
    Frames are streamed to the encoder one at a time.  Returns the number of frames.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in CODECS:
        raise InvalidInputError(f"{path}: unsupported clip extension; use one of {', '.join(CODECS)}")
    if not isinstance(fps, (int, np.integer)) or fps <= 0:
        raise InvalidInputError(f"fps={fps!r} must be a positive int (frames per second)")
    codec, options = CODECS[ext]
    path.parent.mkdir(parents=True, exist_ok=True)
    container = stream = None
    n = 0
    try:
        for frame in frames:
            frame = _check_frame(frame, path, None if stream is None else (stream.height, stream.width))
            if stream is None:
                container = av.open(str(path), "w")
                stream = container.add_stream(codec, rate=int(fps))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.codec_context.thread_count = 1
                if codec == "mpeg4":
                    stream.bit_rate = int(bit_rate)
                stream.options = dict(options)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = n
            for packet in stream.encode(video_frame):
                container.mux(packet)
            n += 1
        if stream is None:
            raise InvalidInputError(f"{path}: no frames to write; a clip needs at least one frame")
        for packet in stream.encode():
            container.mux(packet)
    finally:
        if container is not None:
            container.close()
    return n


def _check_frame(frame, path, shape):
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidInputError(f"{path}: frames must be H x W x 3 uint8 RGB, got {frame.dtype} {frame.shape}")
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        raise InvalidInputError(f"{path}: frame size {frame.shape[1]}x{frame.shape[0]} must be even (yuv420p)")
    if shape is not None and frame.shape[:2] != shape:
        raise InvalidInputError(f"{path}: frame size changed from {shape} to {frame.shape[:2]}")
    return np.ascontiguousarray(frame)


__all__ = ["CODECS", "write_clip"]
