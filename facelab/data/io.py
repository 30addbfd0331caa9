"""Safe image input: anything a user has -> one RGB uint8 array.

**RGB everywhere.**  Every image facelab hands around is a ``numpy.ndarray`` of
shape ``H x W x 3``, dtype ``uint8``, channels in **R, G, B** order.  OpenCV's
``cv2.imread`` returns **B, G, R**: convert with ``img[..., ::-1]`` (or
``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``) before passing it in.  Feeding BGR to
an RGB network silently swaps red and blue and costs accuracy; it is the most
common complaint about the reference implementation, so facelab never uses BGR.

:func:`load_image` accepts a path, ``bytes``, a binary file object, a PIL image,
a numpy array or a torch tensor and

* honours the EXIF orientation tag (phone photos come out upright);
* converts grayscale, palette (with transparency), RGBA/LA (composited on
  white), CMYK and 16-bit / 32-bit integer / float images to 8-bit RGB;
* takes the first frame of animated GIF/WebP files;
* refuses images with more than ``max_pixels`` pixels *before* decoding them
  (the size is read from the file header), so a small file that declares a
  30000 x 30000 image cannot exhaust memory;
* only decodes a whitelist of common raster formats (:data:`DECODE_FORMATS`);
  everything else is an error, never a surprise code path (such as EPS, which
  Pillow renders by calling Ghostscript).

Every problem raises a :class:`facelab.errors.FacelabError` subclass whose
message names the input (its path, the ``name`` you passed, ``"<bytes>"``,
``"<array>"`` ...) and says what to do.
"""
from __future__ import annotations

import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from facelab.data.pixels import (
    array_to_rgb, check_pixels, composite_on_white, gray_to_rgb, high_depth_to_uint8, tensor_to_rgb,
)
from facelab.errors import (
    ImageDecodeError,
    ImageTooLarge,
    InvalidInputError,
    UnsupportedFormatError,
    short_message,
)

#: Default pixel limit (50 megapixels); a 12 MP phone photo is far below it.
DEFAULT_MAX_PIXELS = 50_000_000

#: File name extensions treated as images (lower case).  HEIC/HEIF are listed so
#: that such files are *reported* ("unsupported format; convert ...") instead of
#: being skipped silently.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".avif", ".heic", ".heif",
})
#: File name extensions treated as videos (lower case).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
    ".flv", ".3gp", ".ogv",
})
#: Pillow plugins load_image may use.  Restricting the list keeps untrusted
#: files away from rarely used decoders.
DECODE_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM", "AVIF")

_HEAD_BYTES = 64
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


# --- naming -------------------------------------------------------------------
def input_name(src) -> str:
    """A short human-readable name for an input, used in every error message."""
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src) if not isinstance(os.fspath(src), bytes) else os.fsdecode(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(src, np.ndarray):
        return "<array>"
    if isinstance(src, Image.Image):
        return getattr(src, "filename", "") or "<PIL image>"
    if _is_tensor(src):
        return "<tensor>"
    if hasattr(src, "read"):
        name = getattr(src, "name", None)
        return name if isinstance(name, str) and name else "<file>"
    return f"<{type(src).__name__}>"


def _is_tensor(obj) -> bool:
    torch = sys.modules.get("torch")  # a tensor cannot exist unless torch is imported
    return torch is not None and isinstance(obj, torch.Tensor)


# --- public entry point ---------------------------------------------------------
def load_image(src, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> np.ndarray:
    """Read one image as an ``H x W x 3`` ``uint8`` **RGB** array.

    Parameters
    ----------
    src : str | os.PathLike | bytes | binary file | PIL.Image.Image | numpy.ndarray | torch.Tensor
        * a path or the encoded bytes of a JPEG/PNG/GIF/BMP/TIFF/WebP/PPM/AVIF file;
        * a PIL image (any mode);
        * a numpy array ``H x W`` or ``H x W x {1,3,4}`` of dtype ``uint8``,
          ``uint16`` (scaled ``v * 255 / 65535``), float in ``[0, 1]``, or any
          integer type whose values lie in ``[0, 255]``; 4 channels = RGBA;
        * a torch tensor ``C x H x W`` (preferred when ambiguous) or
          ``H x W x C`` with the same dtype rules.
    max_pixels : int
        Refuse images with more pixels (width * height) than this, before decoding.
        Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``) also applies; raise it
        as well if you really need larger images.
    name : str, optional
        Name used in error messages instead of the automatic one.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous ``H x W x 3`` ``uint8`` array in RGB order.

    Raises
    ------
    ImageDecodeError
        Missing path, directory, empty/truncated/corrupt file, text or HTML file.
    UnsupportedFormatError
        A real file format that is not a supported image (HEIC, audio, video, PDF ...).
    ImageTooLarge
        More than ``max_pixels`` pixels.
    InvalidInputError
        Unsupported Python type, or an array with a wrong shape/dtype/values.
    """
    label = name or input_name(src)
    if isinstance(src, np.ndarray):
        return array_to_rgb(src, label, max_pixels)
    if _is_tensor(src):
        return tensor_to_rgb(src, label, max_pixels)
    if isinstance(src, Image.Image):
        return _decode_pil(src, label, max_pixels)
    if isinstance(src, (str, os.PathLike)):
        return _from_path(src, label, max_pixels)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _from_stream(io.BytesIO(bytes(src)), label, max_pixels)
    if hasattr(src, "read"):
        return _from_fileobj(src, label, max_pixels)
    raise InvalidInputError(
        f"{label}: cannot read an image from a {type(src).__name__}; pass a path, bytes, "
        "a binary file, a PIL image, a numpy array or a torch tensor"
    )


# --- sources ------------------------------------------------------------------
def _from_path(src, label: str, max_pixels: int) -> np.ndarray:
    path = Path(os.fsdecode(os.fspath(src)))
    if not path.exists():
        hint = " (download it first)" if str(src).startswith(("http://", "https://")) else ""
        raise ImageDecodeError(f"{label}: file not found{hint}")
    if path.is_dir():
        raise ImageDecodeError(
            f"{label}: is a directory, not an image; pass image files "
            "(the CLI expands directories for you, or use facelab.data.io.list_images)"
        )
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ImageDecodeError(f"{label}: cannot open file ({exc.strerror or exc})") from exc
    with fh:
        return _from_stream(fh, label, max_pixels)


def _from_fileobj(fh, label: str, max_pixels: int) -> np.ndarray:
    try:
        seekable = fh.seekable() if hasattr(fh, "seekable") else hasattr(fh, "seek")
        if not seekable:
            data = fh.read()
            if not isinstance(data, (bytes, bytearray)):
                raise InvalidInputError(f"{label}: file object must be opened in binary mode ('rb')")
            fh = io.BytesIO(bytes(data))
        else:
            fh.seek(0)  # images are read from the start of the file; fails early if closed
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{label}: cannot read from this file object ({exc})") from exc
    return _from_stream(fh, label, max_pixels)


def _from_stream(fh, label: str, max_pixels: int) -> np.ndarray:
    """Decode an open binary stream positioned at the start of the file."""
    fh.seek(0)
    head = fh.read(_HEAD_BYTES)
    if not isinstance(head, bytes):
        raise InvalidInputError(f"{label}: file object must be opened in binary mode ('rb')")
    fh.seek(0)
    if len(head) == 0:
        raise ImageDecodeError(f"{label}: empty file (0 bytes); re-export or re-download the image")
    unsupported = _sniff_unsupported(head)
    if unsupported:
        raise UnsupportedFormatError(
            f"{label}: unsupported format ({unsupported}); convert to JPEG or PNG"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on corrupt TIFF tags
            img = Image.open(fh, formats=_decode_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = _header_size(fh)
        if size is not None:
            check_pixels(size, label, max_pixels)  # raises with the declared size
        raise ImageTooLarge(
            f"{label}: image too large for Pillow's decompression-bomb guard ({exc}); "
            "raise PIL.Image.MAX_IMAGE_PIXELS only if you trust this file"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise _not_an_image(head, label) from exc
    except Exception as exc:  # any decoder failure on untrusted bytes is a decode error
        raise ImageDecodeError(f"{label}: corrupt image header ({short_message(exc)}); re-export it as JPEG or PNG") from exc
    with img:
        return _decode_pil(img, label, max_pixels)


def _decode_formats() -> tuple[str, ...]:
    """The formats of :data:`DECODE_FORMATS` this Pillow build can decode."""
    global _AVAILABLE
    if _AVAILABLE is None:
        Image.init()
        _AVAILABLE = tuple(f for f in DECODE_FORMATS if f in Image.OPEN)
    return _AVAILABLE


_AVAILABLE: tuple[str, ...] | None = None


def _header_size(fh) -> tuple[int, int] | None:
    """Width and height from the file header only, bypassing Pillow's bomb check (for messages)."""
    for fmt in _decode_formats():
        factory, accept = Image.OPEN[fmt]
        try:
            fh.seek(0)
            if accept and not accept(fh.read(16)):
                continue
            fh.seek(0)
            return factory(fh, "").size  # parses the header; decodes no pixels
        except Exception:
            continue
    return None


# --- PIL image -> RGB array -------------------------------------------------------
def _decode_pil(img: Image.Image, label: str, max_pixels: int) -> np.ndarray:
    """Size check (header only), full decode, EXIF orientation, mode -> RGB."""
    check_pixels(img.size, label, max_pixels)
    try:
        if img.tell() != 0:
            img.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame (files open on it)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a failure is raised, not warned
            img.load()
    except Exception as exc:  # truncated data, broken chunks, decoder errors
        raise ImageDecodeError(
            f"{label}: cannot decode image: truncated or corrupt data ({short_message(exc)}); "
            "re-download or re-export it"
        ) from exc
    img = _exif_upright(img, label)
    try:
        return _pil_to_rgb(img, label)
    except ValueError as exc:
        raise UnsupportedFormatError(
            f"{label}: unsupported image mode {img.mode!r}; convert to JPEG or PNG"
        ) from exc


def _exif_upright(img: Image.Image, label: str) -> Image.Image:
    """Apply the EXIF orientation tag (rotation/flip) so the image is upright."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # a broken EXIF block should not make the pixels unreadable
        warnings.warn(f"{label}: ignoring unreadable EXIF orientation ({short_message(exc)})", stacklevel=4)
        return img


def _pil_to_rgb(img: Image.Image, label: str) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return gray_to_rgb(high_depth_to_uint8(np.asarray(img), mode))
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = np.array(img.convert("RGBA"), dtype=np.uint8)
        return composite_on_white(rgba)
    if mode == "1":
        img = img.convert("L")
    return np.array(img.convert("RGB"), dtype=np.uint8)  # L, CMYK, YCbCr, HSV ...


# --- helpful errors for things that are not images -----------------------------------
def _sniff_unsupported(head: bytes) -> str | None:
    """Name a well-known non-image (or unsupported image) format from its magic bytes."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIC/HEIF photo"
        if brand in _AVIF_BRANDS:
            return None if "AVIF" in _decode_formats() else "AVIF image"
        if brand.startswith((b"M4A", b"M4B")):
            return "MP4 audio"
        return "MP4/QuickTime video"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WAVE":
            return "WAV audio"
        if kind.startswith(b"AVI"):
            return "AVI video"
        return None  # RIFF....WEBP is an image
    for magic, what in (
        (b"ID3", "MP3 audio"), (b"\xff\xfb", "MP3 audio"), (b"\xff\xf3", "MP3 audio"),
        (b"\xff\xf2", "MP3 audio"), (b"OggS", "Ogg audio/video"), (b"fLaC", "FLAC audio"),
        (b"\x1a\x45\xdf\xa3", "Matroska/WebM video"), (b"%PDF", "PDF document"),
        (b"%!PS", "PostScript/EPS document"), (b"8BPS", "Photoshop PSD"),
        (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip archive"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000 image"),
    ):
        if head.startswith(magic):
            return what
    return None


def _not_an_image(head: bytes, label: str) -> ImageDecodeError:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        what = "an HTML page, not an image (a web page saved under an image name?)"
    elif text.startswith(b"<"):
        what = "an XML/SVG text file, not a raster image"
    elif _looks_like_text(head):
        what = "a text file, not an image"
    else:
        what = "not a recognised image (JPEG, PNG, GIF, BMP, TIFF, WebP, PPM)"
    return ImageDecodeError(f"{label}: cannot decode image: the data is {what}; pass a JPEG or PNG file")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # the head may end in the middle of a multi-byte character
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(text) and all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


# --- folders --------------------------------------------------------------------------
def is_image_file(path) -> bool:
    """Does the file name end in one of :data:`IMAGE_EXTENSIONS` (case-insensitive)?"""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path) -> bool:
    """Does the file name end in one of :data:`VIDEO_EXTENSIONS` (case-insensitive)?"""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(folder, recursive: bool = True) -> list[Path]:
    """All image files in ``folder`` (by extension, case-insensitive), sorted.

    Sorted by the path relative to ``folder`` (as a POSIX string), so the order is
    the same on every machine.  Hidden files and folders (names starting with
    ``.``, e.g. ``.ipynb_checkpoints`` or macOS ``._x.jpg`` resource files) are
    left out.
    """
    return _list_files(folder, IMAGE_EXTENSIONS, recursive)


def list_videos(folder, recursive: bool = True) -> list[Path]:
    """All video files in ``folder`` (:data:`VIDEO_EXTENSIONS`), in the order of :func:`list_images`."""
    return _list_files(folder, VIDEO_EXTENSIONS, recursive)


def _list_files(folder, extensions, recursive: bool) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        what = "not found" if not root.exists() else "not a directory"
        raise ImageDecodeError(f"{folder}: folder {what}")
    pattern = root.rglob("*") if recursive else root.iterdir()
    found = []
    for path in pattern:
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in extensions and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DECODE_FORMATS",
    "load_image",
    "is_image_file",
    "is_video_file",
    "list_images",
    "list_videos",
    "input_name",
    "composite_on_white",
]
