"""facelab.data.io: every kind of input becomes an RGB uint8 array, or a named error."""
from __future__ import annotations

import io
import resource

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import facelab.errors as errors
from facelab.data.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    input_name,
    list_images,
    load_image,
)

import bad_inputs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return bad_inputs.write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def tricky(tmp_path_factory):
    return bad_inputs.write_tricky_photos(tmp_path_factory.mktemp("tricky"), bad_inputs.sample_photo(128))


@pytest.fixture(scope="module")
def photo():
    return bad_inputs.sample_photo(64).copy()


# --- the bad-input corpus ------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(bad_inputs.BAD_IMAGE_ERRORS))
def test_bad_file_gets_named_error(corpus, name):
    path = corpus[name]
    expected = getattr(errors, bad_inputs.BAD_IMAGE_ERRORS[name])
    with pytest.raises(expected) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message
    assert bad_inputs.BAD_IMAGE_WORDS[name].lower() in message.lower()
    assert isinstance(info.value, errors.FacelabError)


def test_unsupported_formats_say_convert(corpus):
    for name in ("fake_heic", "audio_wav"):
        with pytest.raises(errors.UnsupportedFormatError, match="convert to JPEG or PNG"):
            load_image(corpus[name])


def test_truncated_jpeg_is_an_error_and_global_flag_untouched(corpus):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(errors.ImageDecodeError):
        load_image(corpus["truncated_jpeg"].read_bytes())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_refused_before_decode_with_bounded_memory(corpus):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for _ in range(3):
        with pytest.raises(errors.ImageTooLarge, match="30000 x 30000"):
            load_image(corpus["png_bomb_30000"])
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100  # a decode would need 30000 * 30000 * 3 bytes = 2.5 GiB


def test_pixel_limit_is_configurable(photo):
    data = Image.fromarray(photo)
    buf = io.BytesIO()
    data.save(buf, format="PNG")
    with pytest.raises(errors.ImageTooLarge, match="4,096 pixels"):
        load_image(buf.getvalue(), max_pixels=64 * 64 - 1)
    assert load_image(buf.getvalue(), max_pixels=64 * 64).shape == (64, 64, 3)
    with pytest.raises(errors.ImageTooLarge):
        load_image(photo, max_pixels=100)  # arrays are checked too
    # a header declaring 8000 x 8000 is refused by facelab's own limit, with its size
    with pytest.raises(errors.ImageTooLarge, match="8000 x 8000"):
        load_image(bad_inputs.png_bomb_bytes(8000, 8000))


def test_odd_but_valid_images_load(corpus):
    one = load_image(corpus["one_pixel"])
    assert one.shape == (1, 1, 3) and one.dtype == np.uint8
    assert one[0, 0].tolist() == [10, 200, 30]
    gif = load_image(corpus["animated_gif"])
    assert gif.shape == (24, 32, 3)
    assert (gif == np.array(bad_inputs.ANIMATED_FIRST_FRAME_RGB, np.uint8)).all()  # first frame


@pytest.mark.parametrize("name", sorted(bad_inputs.bad_arrays()))
def test_bad_arrays_refused(name):
    arr = bad_inputs.bad_arrays()[name]
    with pytest.raises(errors.InvalidInputError, match="<array>"):
        load_image(arr)


def test_messages_name_the_input(corpus):
    with pytest.raises(errors.ImageDecodeError, match="<bytes>"):
        load_image(b"")
    with pytest.raises(errors.ImageDecodeError, match="holiday.jpg"):
        load_image(corpus["text_as_jpg"].read_bytes(), name="holiday.jpg")
    with pytest.raises(errors.InvalidInputError, match="<array>"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(errors.InvalidInputError, match="<tensor>"):
        load_image(torch.zeros(2, 3, 4, 4))
    with pytest.raises(errors.InvalidInputError, match="dict"):
        load_image({"not": "an image"})
    with pytest.raises(errors.ImageDecodeError, match="download it first"):
        load_image("https://example.com/face.jpg")


# --- awkward but valid photos must WORK ----------------------------------------------------
def _mad(a, b) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


def test_tricky_photos_decode_to_the_upright_rgb(tricky):
    rgb = bad_inputs.sample_photo(128)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    loaded = {name: load_image(path) for name, path in tricky.items()}
    for name, arr in loaded.items():
        assert arr.shape == (128, 128, 3) and arr.dtype == np.uint8, name
    # lossless encodings are exact
    assert (loaded["rgb16"] == rgb).all()  # 16-bit RGB -> 8 bit
    assert (loaded["gray16"] == gray[:, :, None]).all()  # 16-bit gray: v * 257 -> v exactly
    assert (loaded["rgba"][4:] == rgb[4:]).all() and (loaded["rgba"][:4] == 255).all()  # white behind alpha=0
    # palette quantisation and JPEG are lossy: close to the photo
    assert _mad(loaded["palette"], rgb) < 6
    assert (loaded["palette_transparent"][:4] == 255).all()
    assert _mad(loaded["palette_transparent"][4:], rgb[4:]) < 6
    assert _mad(loaded["cmyk"], rgb) < 6
    # EXIF orientation: stored rotated, loaded upright
    assert Image.open(tricky["exif_rotated"]).size == (128, 128)
    assert _mad(loaded["exif_rotated"], loaded["upright"]) < 3
    assert _mad(loaded["exif_rotated"], np.rot90(loaded["upright"])) > 20  # really was rotated


def test_exif_orientation_honoured_for_pil_input(tricky):
    upright = load_image(tricky["upright"])
    with Image.open(tricky["exif_rotated"]) as img:
        assert _mad(load_image(img), upright) < 3


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F",
                                  "I;16", "I;16B", "LAB", "HSV"])
def test_every_pil_mode_becomes_rgb(mode):
    base = Image.fromarray(bad_inputs.sample_photo(16))
    if mode in ("I", "F", "I;16", "I;16B"):
        img = Image.fromarray(np.asarray(base.convert("L"), np.int32) * 257, "I")
        img = img if mode == "I" else img.convert(mode) if mode != "F" else Image.fromarray(
            np.asarray(base.convert("L"), np.float32) / 255.0, "F")
    elif mode == "PA":
        img = base.convert("RGBA").convert("PA")
    else:
        img = base.convert(mode)
    assert img.mode == mode
    try:
        out = load_image(img)
    except errors.UnsupportedFormatError as exc:  # a mode Pillow cannot turn into RGB
        assert mode in ("LAB", "HSV") and "convert to JPEG or PNG" in str(exc)
        return
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    if mode in ("L", "I", "F", "I;16", "I;16B", "LA"):
        gray = np.asarray(base.convert("L")).astype(int)
        assert np.abs(out[..., 0].astype(int) - gray).max() <= 1, mode
    elif mode in ("RGB", "RGBA", "RGBa", "YCbCr", "CMYK"):
        assert _mad(out, np.asarray(base)) < 3, mode


@pytest.mark.parametrize("head, what", [
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "MP4"),
    (b"\x00\x00\x00\x1cftypheix\x00\x00\x00\x00mif1heix", "HEIC"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV"),
    (b"RIFF\x24\x00\x00\x00AVI LIST", "AVI"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00", "MP3"),
    (b"OggS\x00\x02\x00\x00", "Ogg"),
    (b"fLaC\x00\x00\x00\x22", "FLAC"),
    (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00", "WebM"),
    (b"%PDF-1.7\n", "PDF"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n", "EPS"),
])
def test_unsupported_formats_are_named(head, what):
    with pytest.raises(errors.UnsupportedFormatError, match=what) as info:
        load_image(head + b"\x00" * 100, name="upload")
    assert str(info.value).startswith("upload: unsupported format")


def test_sixteen_bit_scaling_is_exact():
    arr = np.array([[0, 257, 32767, 32768, 65535]], np.uint16)
    out = load_image(arr)[0, :, 0]
    assert out.tolist() == [0, 1, 127, 128, 255]  # round(v * 255 / 65535)
    img = Image.fromarray(np.array([[0, 65535, 257 * 100]], np.uint16))
    assert img.mode.startswith("I;16")
    assert load_image(img)[0, :, 0].tolist() == [0, 255, 100]


# --- every source type ---------------------------------------------------------------------
def test_every_source_type_gives_the_same_pixels(tmp_path, photo):
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    data = path.read_bytes()

    class NoSeek(io.RawIOBase):  # a socket-like stream
        def __init__(self, payload):
            self._buf = io.BytesIO(payload)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    t_chw = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    sources = {
        "str": str(path), "path": path, "bytes": data, "bytearray": bytearray(data),
        "memoryview": memoryview(data), "file": open(path, "rb"), "bytesio": io.BytesIO(data),
        "noseek": NoSeek(data), "pil": Image.open(path), "array": photo,
        "array_rgba": np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]),
        "float": photo / 255.0, "float32": (photo / 255.0).astype(np.float32),
        "uint16": photo.astype(np.uint16) * 257, "int64": photo.astype(np.int64),
        "tensor_chw": t_chw, "tensor_hwc": torch.from_numpy(photo),
        "tensor_float": t_chw.float() / 255, "tensor_bf16": None,
    }
    sources["tensor_bf16"] = (t_chw.float() / 255).to(torch.bfloat16)
    for name, src in sources.items():
        out = load_image(src)
        assert out.shape == photo.shape and out.dtype == np.uint8 and out.flags.c_contiguous, name
        tol = 2 if name == "tensor_bf16" else 0  # bfloat16 keeps 8 significant bits
        assert np.abs(out.astype(int) - photo).max() <= tol, name
    sources["file"].close()


def test_grayscale_sources_become_rgb(photo):
    gray = photo[:, :, 0]
    for src in (gray, gray[:, :, None], Image.fromarray(gray), torch.from_numpy(gray)[None]):
        out = load_image(src)
        assert out.shape == (64, 64, 3)
        assert (out == gray[:, :, None]).all()
    one_bit = Image.fromarray(gray > 127)  # mode "1"
    assert set(np.unique(load_image(one_bit))) <= {0, 255}


def test_result_is_a_copy(photo):
    src = photo.copy()
    out = load_image(src)
    out[:] = 0
    assert (src == photo).all()


def test_text_mode_file_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    with open(path) as fh:
        with pytest.raises(errors.InvalidInputError, match="binary mode"):
            load_image(fh)


def test_input_name():
    assert input_name("a/b.jpg") == "a/b.jpg"
    assert input_name(b"xx") == "<bytes>"
    assert input_name(np.zeros(3)) == "<array>"
    assert input_name(torch.zeros(3)) == "<tensor>"
    assert input_name(io.BytesIO()) == "<file>"
    assert input_name(Image.new("RGB", (2, 2))) == "<PIL image>"


# --- folders -------------------------------------------------------------------------------------
def test_list_images_sorted_recursive_and_filtered(tmp_path):
    for rel in ("b/2.JPG", "b/10.png", "a.jpeg", "c/d/e.webp", "notes.txt", "clip.mp4",
                ".hidden/x.jpg", "b/._resource.jpg", "labels.csv"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.jpeg", "b/10.png", "b/2.JPG", "c/d/e.webp"]
    top = [p.name for p in list_images(tmp_path, recursive=False)]
    assert top == ["a.jpeg"]
    assert ".jpg" in IMAGE_EXTENSIONS and ".mp4" in VIDEO_EXTENSIONS
    assert not IMAGE_EXTENSIONS & VIDEO_EXTENSIONS
    with pytest.raises(errors.ImageDecodeError, match="not found"):
        list_images(tmp_path / "nope")


# --- fuzzing: only FacelabError escapes ------------------------------------------------------------
def _prefixes():
    rgb = bad_inputs.sample_photo(32)
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


PREFIXES = _prefixes()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_facelab_errors(src):
    try:
        out = load_image(src, max_pixels=4_000_000)
    except errors.FacelabError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data):
    _only_facelab_errors(data)


@FUZZ
@given(st.sampled_from(PREFIXES), st.integers(0, 400), st.binary(max_size=256))
def test_fuzz_valid_prefix_then_garbage(full, keep, garbage):
    _only_facelab_errors(full[: min(keep, len(full))] + garbage)


@FUZZ
@given(st.sampled_from(PREFIXES), st.integers(0, 10_000), st.integers(0, 255))
def test_fuzz_single_byte_corruption(full, pos, value):
    data = bytearray(full)
    data[pos % len(data)] = value
    _only_facelab_errors(bytes(data))


@FUZZ
@given(
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.sampled_from(["uint8", "uint16", "int16", "int64", "float16", "float32", "float64", "bool", "complex64"]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, np.nan, np.inf]),
)
def test_fuzz_random_arrays(shape, dtype, fill):
    with np.errstate(invalid="ignore", over="ignore"):
        arr = np.full(shape, fill).astype(dtype)
    _only_facelab_errors(arr)
