"""The exceptions facelab raises for bad input.

Catch :class:`FacelabError` to handle every user-facing problem at once.  Every
message names the offending input and says what to do about it.
"""
from __future__ import annotations


class FacelabError(Exception):
    """Base class of every error facelab raises on purpose."""


class InvalidInputError(FacelabError, ValueError):
    """An argument has the wrong type, shape, dtype or value (e.g. an array with NaN)."""


class ImageDecodeError(FacelabError):
    """A file or buffer could not be decoded as an image (empty, truncated, not an image)."""


class UnsupportedFormatError(ImageDecodeError):
    """The data is a real file format, but not one facelab can decode (e.g. HEIC, audio)."""


class ImageTooLarge(ImageDecodeError):
    """The image declares more pixels than the configured limit (decompression-bomb guard)."""


class VideoDecodeError(FacelabError):
    """A file could not be decoded as a video (missing, truncated, no video stream, no frames)."""


class CheckpointError(FacelabError):
    """A checkpoint is missing, corrupt, or its config does not match its tensors."""


class UnsafeCheckpointError(CheckpointError):
    """Loading this checkpoint would unpickle arbitrary code; pass an explicit trust flag."""


class PretrainedWeightsUnavailable(CheckpointError):
    """Pretrained (ImageNet) weights could not be downloaded or found in the local cache."""


class ModelDownloadError(CheckpointError):
    """A model-zoo file could not be downloaded, or the file at hand is not the published one
    (wrong size or sha256).  The message names the URL, ``FACELAB_ZOO_MIRROR`` and the exact
    path where the file can be placed by hand."""


class DatasetFormatError(FacelabError):
    """A dataset folder or label file is not in the expected layout."""


def short_message(exc: BaseException, limit: int = 200) -> str:
    """An exception's message (or its type's name) cut to ``limit`` characters, for one-line reports."""
    msg = str(exc).strip() or type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


__all__ = [
    "FacelabError",
    "InvalidInputError",
    "ImageDecodeError",
    "UnsupportedFormatError",
    "ImageTooLarge",
    "VideoDecodeError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "PretrainedWeightsUnavailable",
    "ModelDownloadError",
    "DatasetFormatError",
    "short_message",
]
