"""What an upload to the demo becomes: an RGB image, or one clear message.

:func:`decode_upload` turns the bytes of an uploaded file into an ``H x W x 3`` uint8 RGB
image (the first frame of a video file) or raises a :class:`facelab.errors.FacelabError`
that names the file; :func:`error_headline` gives the short headline the app shows for it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from facelab.data.frames import DEFAULT_MAX_FRAME_PIXELS, iter_frames
from facelab.data.io import is_video_file, load_image
from facelab.errors import (
    CheckpointError,
    FacelabError,
    ImageDecodeError,
    ImageTooLarge,
    UnsupportedFormatError,
    VideoDecodeError,
)


def decode_upload(name: str, content: bytes, *, max_upload_mb: float, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> ``H x W x 3`` uint8 RGB (the first frame for a video file).  Files over
    ``max_upload_mb`` megabytes are refused before decoding, images declaring more than
    ``max_pixels`` pixels too (decompression bombs)."""
    if len(content) > max_upload_mb * 1e6:
        raise ImageTooLarge(
            f"{name}: the file is {len(content) / 1e6:.1f} MB, over the demo's upload limit of "
            f"{max_upload_mb:g} MB; downscale the photo or save it as JPEG"
        )
    if is_video_file(name):
        return first_video_frame(name, content, max_pixels=max_pixels)
    return load_image(content, name=name, max_pixels=max_pixels)


def first_video_frame(name: str, content: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """The first frame (RGB) of an uploaded video file, decoded with :func:`facelab.data.frames.iter_frames`.

    The bytes go to a temporary file (FFmpeg reads files); errors name ``name``, not
    the temporary path.
    """
    suffix = Path(name).suffix.lower() or ".mp4"
    with tempfile.TemporaryDirectory(prefix="facelab-demo-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(content)
        frames = iter_frames(path, max_pixels=max_pixels or DEFAULT_MAX_FRAME_PIXELS)
        try:
            return next(iter(frames)).image
        except StopIteration:
            raise VideoDecodeError(f"{name}: the video has no frames; upload another file") from None
        except VideoDecodeError as exc:
            raise VideoDecodeError(str(exc).replace(str(path), name)) from None
        finally:
            frames.close()


#: Error kind -> the headline the app shows, most specific first.
_HEADLINES = (
    (ImageTooLarge, "File too large"),
    (UnsupportedFormatError, "Unsupported format"),
    (ImageDecodeError, "Not a readable image"),
    (VideoDecodeError, "Not a readable video"),
    (CheckpointError, "Model could not be loaded"),
    (FacelabError, "Cannot process this file"),
)


def error_headline(exc: BaseException) -> str:
    """A short, plain-language headline for an error shown in the app."""
    for kind, headline in _HEADLINES:
        if isinstance(exc, kind):
            return headline
    return f"Unexpected error ({type(exc).__name__}; please report it)"


__all__ = ["decode_upload", "first_video_frame", "error_headline"]
