"""Write the built-in face world in the *real* datasets' on-disk formats.

* ``vggface2``: ``train/n000001/0001_01.jpg``, ``test/...`` (other people), ``train_list.txt``,
  ``test_list.txt``, ``identity_meta.csv``; ``n`` = people in train.
* ``lfw``: ``Name_Surname/Name_Surname_0001.jpg``, ``people.txt``, ``pairs.txt``; ``n`` = people.
* ``utkface``: flat ``<age>_<gender>_<race>_<17-digit time>.jpg.chip.jpg``; ``n`` = images.
* ``affectnet``: ``train/<Class>/000001.jpg`` (AffectNet's class imbalance), ``val/<Class>/...``
  (balanced), or the official CSV layout; ``n`` = training images.
* ``afew``: ``Train/<Angry|Disgust|...>/000000001.avi``, ``Val/...``; ``n`` = training clips (all classes).
* ``vgaf``: ``Train/1_1.mp4`` + ``Train_labels.txt``, ``Val/...``; ``n`` = training clips.
* ``scenes``: ``images/000001.jpg`` + ``boxes.json`` (true face boxes); ``n`` = images.

Each layout's writer lives in :mod:`facelab.synth.layouts` (one module per layout, with
its file and folder names as constants); this module dispatches (:func:`generate`) and
caches (:func:`ensure_dataset`).  Every writer is **deterministic**: item ``i`` of dataset
``d`` draws all of its randomness from its own generator
``numpy.random.SeedSequence([seed, crc32(d), i])`` (:func:`~facelab.synth.items.item_rng`),
so the files are byte-identical whatever the number of worker processes.  JPEGs are saved with PIL at the item's ``nuisance.jpeg_quality`` with
fixed options; clips are encoded single-threaded (:mod:`facelab.synth.clips`).

People of different datasets never overlap: each dataset draws its people from
its own range of person ids (:data:`~facelab.synth.items.PERSON_ID_BASE`) of the world ``seed``, and
the face world gives every person id of a world a different name.

Every dataset root also holds ``facelab_meta.csv``: the true factors of each file
(person, gender, race, age, emotion, intensity) -- the ground truth the real
datasets do not have.  Readers ignore it.
"""
from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

from facelab.errors import InvalidInputError
from facelab.parallel import default_workers
from facelab.paths import data_dir
from facelab.synth.items import (
    META_FILE,
    PERSON_ID_BASE,
    check_count,
    item_rng,
    load_meta,
    sample_ages,
    save_jpeg,
)
from facelab.synth.layouts.afew import write_afew
from facelab.synth.layouts.affectnet import AFFECTNET_INTENSITY, affectnet_train_counts, write_affectnet
from facelab.synth.layouts.lfw import write_lfw
from facelab.synth.layouts.scenes import write_scenes
from facelab.synth.layouts.utkface import write_utkface
from facelab.synth.layouts.vgaf import sample_group, write_vgaf
from facelab.synth.layouts.vggface2 import write_vggface2

#: Bump when the files written for the same arguments change (invalidates cached datasets).
#: Format 4 changed the expression table (``expressions.EXPRESSIONS``) and so every dataset.
FORMAT_VERSION = 4  # bump whenever the renderer or a writer changes its output
#: Datasets whose output changed since FORMAT_VERSION, with their own version, so that the
#: other cached datasets stay valid.  (Under format 2, afew v3 put the apex anywhere in the
#: clip and affectnet v3 drew intensities from AFFECTNET_INTENSITY; format 4 keeps both.)
DATASET_VERSION: dict[str, int] = {}
DATASETS = ("vggface2", "lfw", "utkface", "affectnet", "afew", "vgaf", "scenes")
#: Name of the file that marks a cached dataset as complete (written last).
COMPLETE_MARKER = ".facelab-complete"

#: Sizes the notebooks use (all of them together generate in about a minute on 2 cores).
NOTEBOOK_DEFAULTS = {
    "vggface2": {"n": 100, "size": 112},
    "lfw": {"n": 60, "size": 112},
    "utkface": {"n": 1500, "size": 112},
    "affectnet": {"n": 2400, "size": 112},
    "afew": {"n": 56, "size": 96},
    "vgaf": {"n": 20, "size": 128},
}


# --- dispatcher and cache -------------------------------------------------------------------------

WRITERS = {"vggface2": write_vggface2, "lfw": write_lfw, "utkface": write_utkface,
           "affectnet": write_affectnet, "afew": write_afew, "vgaf": write_vgaf, "scenes": write_scenes}
#: Which writer argument ``n`` sets, and the default ``size`` of each dataset.
_N_ARG = {"vggface2": "n_people", "lfw": "n_people", "utkface": "n", "affectnet": "n_train",
          "afew": None, "vgaf": "n_train", "scenes": "n"}
DEFAULT_SIZE = {"vggface2": 112, "lfw": 112, "utkface": 112, "affectnet": 112, "afew": 96, "vgaf": 128,
                "scenes": 320}


def generate(name: str, root, *, n: int | None = None, seed: int = 0, size: int | None = None, workers=None,
             progress=True, **kw) -> dict:
    """Write dataset ``name`` into ``root``; ``n`` is its main count (see the module table).

    For AFEW ``n`` is the number of training clips over all 7 classes (``n // 7`` per
    class, validation half as many); for VGAF validation gets ``n // 2`` clips.
    Extra keyword arguments go to the writer (e.g. ``images_per_person``).
    """
    if name not in WRITERS:
        raise InvalidInputError(f"unknown synthetic dataset {name!r}; choose one of {', '.join(WRITERS)}")
    args = dict(kw)
    if n is not None:
        n = check_count(n, "n")
        if name == "afew":
            per_class = max(1, n // 7)
            args.setdefault("n_train_per_class", per_class)
            args.setdefault("n_val_per_class", max(1, per_class // 2))
        else:
            args[_N_ARG[name]] = n
            if name == "vgaf":
                args.setdefault("n_val", max(1, n // 2))
    return WRITERS[name](root, size=int(size or DEFAULT_SIZE[name]), seed=int(seed), workers=workers,
                         progress=progress, **args)


def default_data_root() -> Path:
    """Where generated datasets are cached: :func:`facelab.paths.data_dir` (``$FACELAB_DATA``,
    else ``<repo>/data/synth`` in a source checkout, else ``$FACELAB_HOME/synth``)."""
    return data_dir()


def dataset_version(name: str) -> int:
    """The format version of dataset ``name``'s files (``DATASET_VERSION``, else ``FORMAT_VERSION``)."""
    return DATASET_VERSION.get(name, FORMAT_VERSION)


def dataset_key(name: str, *, n=None, seed=0, size=None, **kw) -> str:
    """Folder name of a cached dataset: name, n, seed, size, format version (+ hash of extras)."""
    version = dataset_version(name)
    key = f"{name}-n{n if n is not None else 'default'}-s{seed}-px{size or DEFAULT_SIZE.get(name)}-v{version}"
    if kw:
        digest = zlib.crc32(json.dumps(kw, sort_keys=True, default=str).encode())
        key += f"-{digest:08x}"
    return key


def ensure_dataset(name: str, *, n=None, seed: int = 0, size=None, root=None, workers=None, progress=True,
                   **kw) -> Path:
    """Generate dataset ``name`` once into the cache and return its folder (reused afterwards).

    Generation writes into a temporary folder that is renamed into place after the
    completion marker is written, so an interrupted run is simply redone.
    ``ensure_dataset("affectnet", **NOTEBOOK_DEFAULTS["affectnet"])`` gives the notebooks' set.
    """
    if name not in WRITERS:
        raise InvalidInputError(f"unknown synthetic dataset {name!r}; choose one of {', '.join(WRITERS)}")
    base = Path(root) if root is not None else default_data_root()
    final = base / dataset_key(name, n=n, seed=seed, size=size, **kw)
    if (final / COMPLETE_MARKER).is_file():
        return final
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(base, final.name)
    tmp = base / f"{final.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    summary = generate(name, tmp, n=n, seed=seed, size=size, workers=workers, progress=progress, **kw)
    summary["root"] = str(final)
    (tmp / COMPLETE_MARKER).write_text(json.dumps(summary, sort_keys=True) + "\n", encoding="utf-8")
    if final.exists() and not (final / COMPLETE_MARKER).is_file():
        shutil.rmtree(final)  # an incomplete folder from an older version of this function
    try:
        tmp.rename(final)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / COMPLETE_MARKER).is_file():
            raise
    return final


def _remove_stale_partials(base: Path, key: str) -> None:
    """Delete ``<key>.partial-<pid>`` folders left by processes that no longer run."""
    for path in base.glob(f"{key}.partial-*"):
        try:
            pid = int(path.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


__all__ = ["FORMAT_VERSION", "DATASET_VERSION", "AFFECTNET_INTENSITY", "DATASETS", "NOTEBOOK_DEFAULTS",
           "PERSON_ID_BASE", "item_rng", "save_jpeg", "sample_ages", "affectnet_train_counts", "sample_group",
           "write_vggface2", "write_lfw", "write_utkface", "write_affectnet", "write_afew", "write_vgaf",
           "write_scenes", "generate", "default_data_root", "dataset_version", "dataset_key", "ensure_dataset",
           "load_meta", "WRITERS", "DEFAULT_SIZE", "COMPLETE_MARKER", "META_FILE", "default_workers"]
