"""Where facelab keeps its files, and how it writes them: the one place that reads
``FACELAB_HOME``, ``FACELAB_CACHE``, ``FACELAB_MODELS`` and ``FACELAB_DATA``.

* :func:`facelab_home`: ``$FACELAB_HOME``, else ``~/.cache/facelab``; the model zoo lives in
  :func:`zoo_dir` (downloads and converted networks).
* :func:`cache_dir`: what facelab computes and keeps (course models, crops, clip features):
  ``$FACELAB_CACHE``, else ``<repo>/data/cache`` in a writable source checkout (git-ignored),
  else :func:`facelab_home`.  :func:`models_dir` is ``$FACELAB_MODELS`` or ``cache_dir()/models``.
* :func:`data_dir`: the face world's generated datasets: ``$FACELAB_DATA``, else
  ``<repo>/data/synth`` in a writable source checkout, else ``facelab_home()/synth``.

Nothing here creates a folder; the code that writes a file creates its parent first, with
:func:`atomic_write_bytes`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: The repository folder when facelab runs from a source checkout (``pip install -e .``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def in_source_checkout() -> bool:
    """Does facelab run from a writable source checkout (then its caches stay in ``data/``)?"""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "facelab").is_dir() and \
        os.access(REPO_ROOT, os.W_OK)


def facelab_home() -> Path:
    """facelab's own folder: ``$FACELAB_HOME`` if set, else ``~/.cache/facelab`` (not created here)."""
    return _env_path("FACELAB_HOME") or Path("~/.cache/facelab").expanduser()


def zoo_dir() -> Path:
    """The model zoo's folder, ``facelab_home() / "zoo"``: downloads and converted checkpoints."""
    return facelab_home() / "zoo"


def cache_dir() -> Path:
    """What facelab computes and keeps: ``$FACELAB_CACHE``, else ``<repo>/data/cache`` in a source
    checkout, else :func:`facelab_home`."""
    if _env_path("FACELAB_CACHE"):
        return _env_path("FACELAB_CACHE")
    return REPO_ROOT / "data" / "cache" if in_source_checkout() else facelab_home()


def models_dir() -> Path:
    """Trained checkpoints of the course and the demo: ``$FACELAB_MODELS``, else ``cache_dir()/models``."""
    return _env_path("FACELAB_MODELS") or cache_dir() / "models"


def data_dir() -> Path:
    """Generated face-world datasets: ``$FACELAB_DATA``, else ``<repo>/data/synth`` in a source
    checkout, else ``facelab_home()/synth``."""
    if _env_path("FACELAB_DATA"):
        return _env_path("FACELAB_DATA")
    return REPO_ROOT / "data" / "synth" if in_source_checkout() else facelab_home() / "synth"


#: How a temporary file of :func:`atomic_write_bytes` ends (a crashed writer's leftovers can be found by it).
TMP_SUFFIX = ".facelab-tmp"


def atomic_write_bytes(path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old or the new file, never
    a half-written one: temporary file in the same folder, fsync, ``os.replace``.  The file
    gets the usual permissions (0666 minus the umask), not mkstemp's private 0600.  ``durable=False``
    skips the fsyncs (many small files that can be made again, such as prepared crops)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if not durable:
        return path
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some file systems do not allow fsync on folders
        pass
    return path


__all__ = ["REPO_ROOT", "in_source_checkout", "facelab_home", "zoo_dir", "cache_dir", "models_dir", "data_dir",
           "atomic_write_bytes", "TMP_SUFFIX"]
