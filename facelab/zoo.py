"""The model zoo: the paper's published networks, downloaded on first use and checked.

:data:`MODELS` lists the networks the method's author publishes (HSEmotion, now EmotiEffLib:
emotion networks trained on AffectNet, identity backbones trained on VGGFace2) and
facenet-pytorch's VGGFace2 ``InceptionResnetV1``, with what it takes to read each one (timm
architecture, file format, input size, normalisation, label order) and where it comes from
(URL, licence, the publisher's figures).  Importing this module touches neither the network
nor torch; nothing is downloaded until :func:`download` is called.

Files live in ``$FACELAB_HOME/zoo/downloads/`` (see :mod:`facelab.paths`)::

    FILE          the published file, byte for byte
    FILE.json     its manifest: name, file, url, sha256, size, downloaded (UTC), placed_by_hand
    FILE.part     an interrupted download; the next call resumes it (HTTP ``Range``)
    FILE.bad      a file that failed its check, moved aside (never returned)

* :func:`download` streams the file into ``FILE.part``, checks its size (the entry's, and the
  length the server announced) and its sha256 (when the entry pins one), writes the manifest
  and renames the file into place (``os.replace``).  A size or hash failure never leaves a
  file at the final path.
* Every later use (:func:`download`, :func:`cached`, :func:`verify`) hashes the file again and
  compares it with its manifest and the pinned hash.  A file that changed on disk is moved to
  ``FILE.bad`` and :class:`~facelab.errors.ModelDownloadError` is raised.
* ``$FACELAB_ZOO_MIRROR`` replaces the origin of every file: a local folder (``FOLDER/FILE`` is
  copied) or an http(s) URL (``URL/FILE`` is fetched).  Handy for machines without internet.
* A file placed by hand at ``FILE`` (no manifest beside it) is accepted when it matches the
  pinned size and sha256; where nothing is pinned it is accepted as it is, and the manifest
  written for it says ``"placed_by_hand": true``.  From then on it is checked like a download.

Sizes and hashes of the published files are not pinned yet (they were never fetched where
this registry was written), so the first download is trusted and every later load is checked
against it.  Pin them in :data:`MODELS` once known.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from facelab import labels as L
from facelab.errors import InvalidInputError, ModelDownloadError
from facelab.paths import atomic_write_bytes, zoo_dir

#: Environment variable naming a folder or http(s) URL that replaces every file's origin.
MIRROR_ENV = "FACELAB_ZOO_MIRROR"
#: Seconds to wait for the server to connect or send more data.
TIMEOUT = 30.0
#: Bytes read and written at a time.
CHUNK = 1 << 20
MANIFEST_FORMAT = "facelab-zoo-manifest"
PICKLED, STATE_DICT = "pickled model", "state dict"


@dataclass(frozen=True)
class ZooModel:
    """One published network: what it is, how to read it, where it comes from."""

    name: str
    tasks: tuple[str, ...]  # ("emotion",), ("emotion", "valence", "arousal") or ("identity",)
    architecture: str  # exact timm name, or "facenet_pytorch.InceptionResnetV1"
    file_format: str  # "pickled model" (``torch.save(model)``) or "state dict"
    file: str  # local file name
    url: str
    image_size: int | None  # input side in pixels (RGB, resized)
    mean: tuple[float, ...] | None  # normalisation of [0, 1] RGB values: (x - mean) / std
    std: tuple[float, ...] | None
    labels: tuple[str, ...] = ()  # emotion order of the outputs (facelab.labels)
    extra_outputs: tuple[str, ...] = ()  # outputs after the emotion logits (valence, arousal)
    head: str | None = None  # classifier module of the file ("classifier", "fc", "head.fc", "logits")
    size: int | None = None  # bytes, when pinned
    sha256: str | None = None  # when pinned
    licence: str = ""
    source: str = ""  # repository and path, in words
    trained_on: str = ""
    figures: dict = field(default_factory=dict, hash=False)  # publisher's accuracies (%), validation sets
    supported: bool = True
    reason: str | None = None  # why facelab cannot load it (``supported=False``)

    @property
    def summary(self) -> str:
        """The entry as one line: name, tasks, architecture, input, training data, figures."""
        size = f"{self.image_size} px" if self.image_size else "input size unknown"
        figures = ", ".join(f"{k} {v:.2f}" for k, v in self.figures.items())
        line = (f"{self.name}: {'+'.join(self.tasks)}, {self.architecture} ({self.file_format}, {size}), "
                f"trained on {self.trained_on}, {self.licence}")
        line += f"; published: {figures}" if figures else ""
        return line + (f"; unsupported: {self.reason}" if not self.supported else "")


# --- the registry -------------------------------------------------------------------
_EMOTIEFFLIB = "https://github.com/sb-ai-lab/EmotiEffLib/blob/main/{path}?raw=true"  # redirects to Git LFS


def _publisher(name: str, folder: str, **kw) -> ZooModel:
    path = f"models/{folder}/{name}.pt"
    return ZooModel(name=name, file=f"{name}.pt", url=_EMOTIEFFLIB.format(path=path), licence="Apache-2.0",
                    source=f"sb-ai-lab/EmotiEffLib (formerly HSE-asav/face-emotion-recognition), {path}", **kw)


def _emotion(name, architecture, image_size, classes, figures, *, va=False, **kw) -> ZooModel:
    extra = ("valence", "arousal") if va else ()
    kw = {"file_format": PICKLED, "mean": L.IMAGENET_MEAN, "std": L.IMAGENET_STD, "head": "classifier", **kw}
    return _publisher(name, "affectnet_emotions", tasks=("emotion", *extra), architecture=architecture,
                      image_size=image_size, labels=L.emotions(classes), extra_outputs=extra,
                      trained_on="AffectNet", figures=figures, **kw)


def _identity(name, architecture, image_size) -> ZooModel:
    """The paper's identity pre-training: a backbone state dict without classifier.  Input size
    and ImageNet normalisation are those of the emotion networks fine-tuned from it."""
    return _publisher(name, "pretrained_faces", tasks=("identity",), architecture=architecture,
                      file_format=STATE_DICT, image_size=image_size, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD,
                      trained_on="VGGFace2")


def _figures(affectnet8, affectnet7, afew, vgaf) -> dict:
    pairs = (("AffectNet-8", affectnet8), ("AffectNet-7", affectnet7), ("AFEW", afew), ("VGAF", vgaf))
    return {k: v for k, v in pairs if v is not None}


_NOT_TIMM = ("MobileFaceNet is the publisher's own module, not a timm architecture: facelab cannot "
             "rebuild it without running the file's pickle")
_MOBILEVIT_UNKNOWN = ("the exact timm MobileViT variant and its preprocessing are not published, so "
                      "facelab cannot build the network and check its outputs honestly")

MODELS: dict[str, ZooModel] = {m.name: m for m in (
    _emotion("enet_b0_8_best_afew", "tf_efficientnet_b0", 224, 8, _figures(60.95, 64.63, 59.89, 66.80)),
    _emotion("enet_b0_8_best_vgaf", "tf_efficientnet_b0", 224, 8, _figures(61.32, 64.57, 55.14, 68.29)),
    _emotion("enet_b0_8_va_mtl", "tf_efficientnet_b0", 224, 8, _figures(61.93, 64.94, 56.73, 66.58), va=True),
    _emotion("enet_b2_8", "tf_efficientnet_b2", 260, 8, _figures(63.03, 66.29, 57.78, 70.23)),
    _emotion("enet_b2_7", "tf_efficientnet_b2", 260, 7, _figures(None, 66.34, 59.63, 69.84)),
    _emotion("mbf_va_mtl", "MobileFaceNet (publisher's module)", 112, 8, {}, va=True, head="fc",
             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), supported=False, reason=_NOT_TIMM),
    _emotion("mobilevit_va_mtl", "MobileViT (timm variant not published)", None, 8, {}, va=True, head="head.fc",
             mean=None, std=None, supported=False, reason=_MOBILEVIT_UNKNOWN),
    _identity("state_vggface2_enet0_new", "tf_efficientnet_b0", 224),
    _identity("state_vggface2_enet2", "tf_efficientnet_b2", 260),
    _identity("state_vggface2_rexnet_150", "rexnet_150", 224),
    # facenet_pytorch.fixed_image_standardization: (x - 127.5) / 128 on 0..255 values
    ZooModel(name="facenet_vggface2", tasks=("identity",), architecture="facenet_pytorch.InceptionResnetV1",
             file_format=STATE_DICT, file="20180402-114759-vggface2.pt",
             url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
             image_size=160, mean=(0.5, 0.5, 0.5), std=(128 / 255,) * 3, head="logits", licence="MIT",
             source="timesler/facenet-pytorch, GitHub release v2.2.9, 20180402-114759-vggface2.pt "
                    "(InceptionResnetV1, 512-d embeddings; 'logits' is its 8631-way training classifier)",
             trained_on="VGGFace2"),
)}


def list_models(task: str | None = None, *, supported_only: bool = False) -> list[ZooModel]:
    """The entries of :data:`MODELS`, optionally only those for ``task`` ("emotion",
    "valence", "arousal", "identity") and only those facelab can load."""
    known = sorted({t for m in MODELS.values() for t in m.tasks})
    if task is not None and task not in known:
        raise InvalidInputError(f"no zoo model does {task!r}; tasks: {', '.join(known)}")
    return [m for m in MODELS.values()
            if (task is None or task in m.tasks) and (m.supported or not supported_only)]


def get(name: str) -> ZooModel:
    """The entry called ``name``; :class:`InvalidInputError` lists the known names otherwise."""
    if isinstance(name, str) and name in MODELS:
        return MODELS[name]
    raise InvalidInputError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")


def is_zoo_name(obj) -> bool:
    """True for a string that names a zoo model and is not an existing file or folder."""
    return isinstance(obj, str) and obj in MODELS and not os.path.exists(obj)


def _entry(name_or_entry) -> ZooModel:
    return name_or_entry if isinstance(name_or_entry, ZooModel) else get(name_or_entry)


def local_path(name_or_entry) -> Path:
    """Where the file lives (or will): ``$FACELAB_HOME/zoo/downloads/FILE``."""
    return zoo_dir() / "downloads" / _entry(name_or_entry).file


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def sha256_of(path) -> str:
    """The sha256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _failure(entry: ZooModel, reason: str, url: str, *, tried: bool = True) -> ModelDownloadError:
    return ModelDownloadError(
        f"{entry.name}: {reason} ({'tried' if tried else 'published at'} {url}). To fix: run again, set "
        f"{MIRROR_ENV} to a folder or http(s) URL that holds {entry.file}, or place the published file "
        f"by hand at {local_path(entry)}")


# --- checking files on disk -----------------------------------------------------------
def _write_manifest(path: Path, entry: ZooModel, url: str | None, digest: str, size: int) -> None:
    manifest = {"format": MANIFEST_FORMAT, "name": entry.name, "file": entry.file, "url": url, "sha256": digest,
                "size": size, "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "placed_by_hand": url is None}
    atomic_write_bytes(_sibling(path, ".json"), (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def _check(entry: ZooModel, path: Path) -> Path:
    """Hash the file at ``path`` and compare with its manifest and the pinned size / sha256.
    Returns ``path``; a mismatch moves the file to ``FILE.bad`` and raises."""
    manifest_file = _sibling(path, ".json")
    size, digest = path.stat().st_size, sha256_of(path)
    problems = []
    if manifest_file.is_file():
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            recorded = (int(manifest["size"]), str(manifest["sha256"]))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            problems.append(f"its manifest {manifest_file} is unreadable ({exc})")
        else:
            if recorded != (size, digest):
                problems.append(f"it changed since it was fetched: {size} bytes, sha256 {digest}; its manifest "
                                f"records {recorded[0]} bytes, sha256 {recorded[1]}")
    elif entry.size is None and entry.sha256 is None:
        _write_manifest(path, entry, None, digest, size)  # placed by hand, nothing pinned: accepted as is
        return path
    if entry.size is not None and size != entry.size:
        problems.append(f"{path} has {size} bytes, the published file {entry.size}")
    if entry.sha256 is not None and digest != entry.sha256.lower():
        problems.append(f"{path} has sha256 {digest}, the published file {entry.sha256}")
    if problems:
        bad = _sibling(path, ".bad")
        os.replace(path, bad)
        manifest_file.unlink(missing_ok=True)
        raise _failure(entry, "; ".join(problems) + f". The file was moved to {bad}; run again to download "
                                                    "a fresh copy", entry.url, tried=False)
    if not manifest_file.is_file():
        _write_manifest(path, entry, None, digest, size)  # placed by hand, matches what is pinned
    return path


def cached(name) -> Path | None:
    """The checked local file of ``name``, or None when it is not downloaded.  Never downloads;
    a file that fails its check raises :class:`ModelDownloadError` (and is moved aside)."""
    entry = _entry(name)
    path = local_path(entry)
    return _check(entry, path) if path.is_file() else None


def verify(name) -> Path:
    """Check the local file of ``name`` (sha256 against its manifest and the pinned hash) and
    return its path; :class:`ModelDownloadError` when it is missing or does not match."""
    entry = _entry(name)
    path = cached(entry)
    if path is None:
        raise _failure(entry, f"not downloaded yet (no file at {local_path(entry)})", entry.url, tried=False)
    return path


# --- fetching ---------------------------------------------------------------------
def _origin(entry: ZooModel) -> str:
    """Where the bytes come from: ``$FACELAB_ZOO_MIRROR/FILE`` (URL or path) when it is set, else the entry's URL."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return entry.url
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + urllib.parse.quote(entry.file)
    if mirror.startswith("file://"):
        mirror = urllib.request.url2pathname(urllib.parse.urlparse(mirror).path)
    return str(Path(mirror).expanduser() / entry.file)


def _bar(entry: ZooModel, total: int | None, initial: int, progress: bool):
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file,
                disable=not progress)


def _stream(source, part: Path, mode: str, bar) -> int:
    written = 0
    with open(part, mode) as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return written


def _copy(entry: ZooModel, source: str, part: Path, progress: bool) -> None:
    """Copy the file from a mirror folder."""
    if not Path(source).parent.is_dir():
        raise _failure(entry, f"{MIRROR_ENV} is neither an http(s) URL nor an existing folder", source)
    if not Path(source).is_file():
        raise _failure(entry, f"{MIRROR_ENV} points to a folder without {entry.file}", source)
    try:
        with open(source, "rb") as src, _bar(entry, os.path.getsize(source), 0, progress) as bar:
            _stream(src, part, "wb", bar)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise _failure(entry, f"copying from the mirror failed ({exc})", source) from None


def _fetch(entry: ZooModel, url: str, part: Path, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming the bytes already there (``Range: bytes=N-``:
    206 appends, 200 starts over).  A cut connection keeps the part for the next call."""
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "facelab-zoo"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            content_range = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if start and response.status == 206:
                if not content_range or int(content_range[1]) != start:
                    part.unlink()
                    raise _failure(entry, f"the server answered a request for bytes {start}- with "
                                          f"{response.headers.get('Content-Range')!r}; the partial file was deleted",
                                   url)
                total = None if content_range[2] == "*" else int(content_range[2])
            else:
                start, length = 0, response.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
            if entry.size is not None and total is not None and total != entry.size:
                part.unlink(missing_ok=True)
                raise _failure(entry, f"the server offers {total} bytes, the published file has {entry.size}", url)
            with _bar(entry, total or entry.size, start, progress) as bar:
                received = start + _stream(response, part, "ab" if start else "wb", bar)
    except urllib.error.HTTPError as exc:
        exc.close()
        announced = re.fullmatch(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") if exc.headers else "")
        if exc.code == 416 and start and announced and int(announced[1]) == start:
            return  # the part was already complete
        if exc.code == 416 and start:
            part.unlink()  # the part does not fit the file on the server: start over
            return _fetch(entry, url, part, progress)
        raise _failure(entry, f"the server answered HTTP {exc.code} {exc.reason}", url) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        kept = part.stat().st_size if part.is_file() else 0
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        kept = f"; {kept} bytes are kept in {part}, the next call resumes" if kept else ""
        raise _failure(entry, f"the download failed ({type(exc).__name__}: {reason}){kept}", url) from None
    if total is not None and received < total:
        raise _failure(entry, f"the connection ended after {received} of {total} bytes; they are kept in {part}, "
                              "the next call resumes", url)


def download(name_or_entry, *, progress: bool = True, force: bool = False) -> Path:
    """The checked local file of a zoo model (a name or a :class:`ZooModel`), downloaded on
    first use: ``$FACELAB_HOME/zoo/downloads/FILE``.

    A file already there is hashed and compared with its manifest (no network).  Otherwise
    the file comes from ``$FACELAB_ZOO_MIRROR`` (a folder or an http(s) URL) when set, else
    from the entry's URL; it is streamed into ``FILE.part`` (a tqdm bar on stderr unless
    ``progress=False``), resumed when a part is left from an earlier attempt, checked (size,
    sha256), then renamed into place beside its manifest ``FILE.json``.  ``force=True``
    deletes the local copy and any part first.

    Raises :class:`ModelDownloadError` (no network, timeout after :data:`TIMEOUT` s, HTTP
    error, wrong size, wrong sha256, mirror without the file); its message names the URL,
    ``FACELAB_ZOO_MIRROR`` and the path where the file can be placed by hand.
    """
    entry = _entry(name_or_entry)
    path = local_path(entry)
    part = _sibling(path, ".part")
    if force:
        for stale in (path, _sibling(path, ".json"), part):
            stale.unlink(missing_ok=True)
    elif path.is_file():
        return _check(entry, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    origin = _origin(entry)
    if origin.startswith(("http://", "https://")):
        _fetch(entry, origin, part, progress)
    else:
        _copy(entry, origin, part, progress)
    size = part.stat().st_size
    if entry.size is not None and size != entry.size:
        part.unlink()
        raise _failure(entry, f"got {size} bytes, the published file has {entry.size}; the download was deleted",
                       origin)
    digest = sha256_of(part)
    if entry.sha256 is not None and digest != entry.sha256.lower():
        part.unlink()
        raise _failure(entry, f"got sha256 {digest}, the published file has {entry.sha256}; the download was "
                              "deleted", origin)
    _write_manifest(path, entry, origin, digest, size)
    os.replace(part, path)
    return path


def markdown_table() -> str:
    """The registry as a Markdown table (``docs/models.md`` embeds it; a test keeps them equal)."""
    rows = ["| name | tasks | architecture, input | trained on | licence | publisher's figures | facelab |",
            "|---|---|---|---|---|---|---|"]
    for e in MODELS.values():
        figures = ", ".join(f"{k} {v:.2f}" for k, v in e.figures.items()) or "–"
        size = f"{e.image_size} px" if e.image_size else "size unknown"
        status = "loads" if e.supported else f"listed only: {e.reason}"
        rows.append(f"| `{e.name}` | {', '.join(e.tasks)} | `{e.architecture}`, {size} | {e.trained_on} | "
                    f"{e.licence} | {figures} | {status} |")
    return "\n".join(rows) + "\n"


__all__ = [
    "MIRROR_ENV", "TIMEOUT", "ZooModel", "MODELS", "list_models", "get", "is_zoo_name", "local_path", "sha256_of",
    "cached", "verify", "download", "markdown_table",
]
