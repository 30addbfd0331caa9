"""Pixel arrays -> one RGB uint8 array: the conversions behind :func:`facelab.data.io.load_image`.

numpy arrays and torch tensors of any supported shape and dtype (grayscale, RGBA composited on
white, 16-bit, float in ``[0, 1]``), and the pixel-count limit checked before anything is decoded.
Every problem is an :class:`facelab.errors.InvalidInputError` or
:class:`facelab.errors.ImageTooLarge` naming the input (``label``).
"""
from __future__ import annotations

import numpy as np

from facelab.errors import ImageTooLarge, InvalidInputError


def check_pixels(size, label: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLarge(
            f"{label}: image is {w} x {h} = {w * h:,} pixels, over the limit of {max_pixels:,}; "
            "downscale it or pass a larger max_pixels"
        )


def high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit and 32-bit grayscale to 8 bits.

    ``I;16*`` and ``I`` are taken as 16-bit values (0..65535 -> 0..255, i.e.
    ``round(v * 255 / 65535)``); ``F`` as floats in [0, 1] if they fit, else
    0..255, else 0..65535.
    """
    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(arr.max()) if arr.size else 0.0
        scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
        return np.clip(np.rint(arr * (255.0 / scale)), 0, 255).astype(np.uint8)
    return uint16_to_uint8(np.clip(arr.astype(np.int64), 0, 65535))


def uint16_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Exact rounding of ``v * 255 / 65535`` (0 -> 0, 65535 -> 255)."""
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 -> RGB uint8 over a white background: ``rgb * a + 255 * (1 - a)``."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8))


def array_to_rgb(arr: np.ndarray, label: str, max_pixels: int) -> np.ndarray:
    """Validate and convert a numpy image (see :func:`load_image` for the rules)."""
    if arr.dtype == bool or arr.dtype.kind not in "uif":
        raise InvalidInputError(
            f"{label}: unsupported array dtype {arr.dtype}; use uint8 (0-255), uint16 or float in [0, 1]"
        )
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        raise InvalidInputError(
            f"{label}: array of shape {arr.shape} looks channels-first; facelab expects H x W x C "
            "(use arr.transpose(1, 2, 0))"
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise InvalidInputError(
            f"{label}: array of shape {arr.shape} is not an image; expected H x W, H x W x 1, "
            "H x W x 3 (RGB) or H x W x 4 (RGBA)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{label}: empty image array of shape {arr.shape}")
    check_pixels((arr.shape[1], arr.shape[0]), label, max_pixels)
    arr = _array_to_uint8(arr, label)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        return gray_to_rgb(arr[:, :, 0])
    if arr.shape[2] == 4:
        return composite_on_white(arr)
    return np.array(arr, dtype=np.uint8, order="C", copy=True)


def _array_to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    kind = arr.dtype.kind
    if kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{label}: image array contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInputError(
                f"{label}: float image values must lie in [0, 1], got [{lo:g}, {hi:g}]; "
                "divide by 255 if they are 0-255 values"
            )
        return np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return uint16_to_uint8(arr)
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
        raise InvalidInputError(
            f"{label}: {arr.dtype} image values must lie in [0, 255], got [{lo}, {hi}]; "
            "use uint8, uint16 or float in [0, 1]"
        )
    return arr.astype(np.uint8)


def tensor_to_rgb(t, label: str, max_pixels: int) -> np.ndarray:
    """A torch tensor ``C x H x W`` (preferred when ambiguous), ``H x W x C`` or ``H x W``."""
    import torch  # only reached with a tensor, so torch is already imported

    if t.ndim == 3:
        if t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        elif t.shape[-1] not in (1, 3, 4):
            raise InvalidInputError(
                f"{label}: tensor of shape {tuple(t.shape)} is not an image; expected C x H x W or H x W x C "
                "with C in (1, 3, 4)"
            )
    elif t.ndim != 2:
        raise InvalidInputError(
            f"{label}: tensor of shape {tuple(t.shape)} is not one image; pass C x H x W "
            "(for a batch, pass a list of images)"
        )
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    if t.dtype == torch.bool or t.is_complex():
        raise InvalidInputError(f"{label}: unsupported tensor dtype {t.dtype}")
    return array_to_rgb(t.contiguous().numpy(), label, max_pixels)


__all__ = ["check_pixels", "composite_on_white", "gray_to_rgb", "high_depth_to_uint8", "uint16_to_uint8",
           "array_to_rgb", "tensor_to_rgb"]
