"""The inputs of a batch: paths, folders (expanded to their images and videos), arrays, bytes ...,
each with its display name, and the failed ones kept with their reason (nothing dropped silently)."""
from __future__ import annotations

import os
from pathlib import Path

from facelab.data.io import input_name, is_video_file, list_images, list_videos
from facelab.errors import FacelabError, InvalidInputError


class InputItem:
    """One input of a batch: its position, display name and source (or the error it raised)."""

    __slots__ = ("index", "name", "source", "error", "faces")

    def __init__(self, index, name, source, error=None):
        self.index, self.name, self.source, self.error = index, name, source, error
        self.faces = []


def expand_inputs(images, names=None, *, videos: bool = False) -> list:
    """Inputs -> a flat list of ``(name, source, kind)`` with kind ``"image"``, ``"video"`` or
    ``"error"`` (source is then the message).

    ``images`` is one input or a list of inputs; a folder is replaced by its images
    (sorted, :func:`facelab.data.io.list_images`) -- and its videos when ``videos=True``.
    A folder without any becomes one ``"error"`` entry, so nothing goes missing silently.
    """
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if names is not None:
        names = list(names)
        if len(names) != len(items):
            raise InvalidInputError(f"names has {len(names)} entries for {len(items)} inputs")
    out = []
    for i, src in enumerate(items):
        name = names[i] if names is not None else display_name(src, i, len(items))
        if isinstance(src, (str, os.PathLike)) and Path(src).is_dir():
            found = [(p, "image") for p in list_images(src)]
            if videos:
                found += [(p, "video") for p in list_videos(src)]
                found.sort(key=lambda pk: pk[0].relative_to(src).as_posix())
            if not found:
                what = "images or videos" if videos else "images"
                out.append((name, f"{name}: folder contains no {what}; check the path", "error"))
            out += [(str(p), p, kind) for p, kind in found]
        elif videos and isinstance(src, (str, os.PathLike)) and is_video_file(src):
            out.append((name, src, "video"))
        else:
            out.append((name, src, "image"))
    return out


def display_name(src, i: int, n: int) -> str:
    """The name of input ``i`` of ``n`` in rows and messages (``<array #3>`` for unnamed ones)."""
    try:
        base = input_name(src)
    except Exception:  # noqa: BLE001 - a name must never fail
        base = f"<{type(src).__name__}>"
    return base if n == 1 or not base.startswith("<") else f"{base[:-1]} #{i}>"


def short_error(exc: BaseException) -> str:
    """The reason an input failed, as its row's ``error``."""
    if isinstance(exc, FacelabError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


__all__ = ["InputItem", "expand_inputs", "display_name", "short_error"]
