"""Detect and crop a whole image dataset once: ``facelab prepare ROOT --out CROPS``.

The output folder mirrors the input folder, so the dataset readers that read
``ROOT`` read ``CROPS`` unchanged (switch one path in a notebook):

* every image ``ROOT/<rel>`` becomes the face crop ``CROPS/<rel>`` - **same
  relative path and file name**; the encoder follows the extension: JPEG
  (quality 95) for ``.jpg/.jpeg/.jpe/.jfif``, PNG for ``.png``, lossless WebP for
  ``.webp``, and BMP / TIFF / GIF / PPM / AVIF for those extensions;
* every other file (label lists, CSV files, ``README``) is copied byte for byte;
* hidden files and folders (names starting with ``.``) are left out;
* the crop is the **largest face** of the image (MTCNN, probability >=
  ``threshold``) under a crop policy of the paper (:func:`facelab.faces.crop_box`:
  ``tight`` = detector box, no margin; ``margin``; ``center`` = centre square of
  the photo, which needs no detector), resized to ``size x size``;
* images that cannot be read or have no face are listed in ``CROPS/failures.csv``
  (columns ``path,reason``; path relative to ROOT, sorted) - nothing is dropped
  silently;
* the detector's box of every crop is kept in ``CROPS/boxes.csv`` (columns
  ``path,x1,y1,x2,y2`` in the image's pixels), so a second crop policy of the same
  photos can reuse the faces instead of running MTCNN again
  (``boxes_from=CROPS`` / ``--boxes-from CROPS``: e.g. margin crops after tight ones).

**Resumable.**  Every output is written atomically (temporary file, then
``os.replace``), so an interrupted run leaves only complete files.  Run the same
command again: existing outputs are skipped, images already listed in
``failures.csv`` are not retried (pass ``retry_failed=True`` / ``--retry-failed``),
and the result is byte-identical to an uninterrupted run.  To make that exact,
images are processed in fixed chunks of the sorted file list (``chunk_size``): a
chunk with anything left to do is detected again *as a whole* (MTCNN's float
results depend slightly on which images share its batch), and only its missing
outputs are written.  The settings are stored in ``CROPS/.facelab-prepare.json``;
resuming with different settings is refused.

**Speed.**  Same-size images of a chunk go through MTCNN as one batch.  With
``workers > 1`` chunks are spread over a process pool (each process with
``cpu_count // workers`` torch threads).  On the shared 2-core development
machine one process was faster: 96 images of 250 x 250 px, tight crops took a
median 14 s in one process with 1 torch thread, 28 s with 2 worker processes
(spawn start-up included), 63 s in one process with 2 torch threads (OpenMP
threads fighting other jobs for the cores).  So ``workers=None`` means 1 below
8 cores, and ``min(4, cpu_count // 2)`` above (not measured here).
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from facelab.data.io import DEFAULT_MAX_PIXELS, is_image_file, load_image
from facelab.errors import DatasetFormatError, FacelabError, InvalidInputError
from facelab.faces import CROP_POLICIES, crop_faces, detect_faces, largest_face
from facelab.parallel import check_workers, usable_cpus
from facelab.paths import TMP_SUFFIX, atomic_write_bytes

SETTINGS_FILE = ".facelab-prepare.json"
FAILURES_FILE = "failures.csv"
BOXES_FILE = "boxes.csv"
#: The columns of BOXES_FILE.
BOX_COLUMNS = ("path", "x1", "y1", "x2", "y2")

#: extension -> (Pillow format, save options) for the crops.
SAVE_FORMATS = {
    ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
    ".jpe": ("JPEG", {"quality": 95}), ".jfif": ("JPEG", {"quality": 95}),
    ".png": ("PNG", {}), ".webp": ("WEBP", {"lossless": True}), ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {}), ".tiff": ("TIFF", {}), ".gif": ("GIF", {}),
    ".ppm": ("PPM", {}), ".pgm": ("PPM", {}), ".pbm": ("PPM", {}), ".pnm": ("PPM", {}),
    ".avif": ("AVIF", {"quality": 95}),
}


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did.

    done : crops written by this run.
    skipped_existing : images whose crop was already there (an earlier run).
    failed : images listed in ``failures.csv`` (unreadable or no face), this run or earlier.
    copied : non-image files copied by this run.
    """

    root: Path
    out: Path
    images: int
    done: int
    skipped_existing: int
    failed: int
    copied: int
    failures_csv: Path
    failures: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.images} images: {self.done} crops written, {self.skipped_existing} already there, "
                f"{self.failed} failed (see {self.failures_csv}); {self.copied} other files copied")


# --- planning -----------------------------------------------------------------------------------------
def _scan(root: Path, out: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX paths of the images and of the other files under ``root``, sorted."""
    images, others = [], []
    out_resolved = out.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and (here / d).resolve() != out_resolved)
        for name in filenames:
            if name.startswith("."):
                continue
            rel = (here / name).relative_to(root).as_posix()
            (images if is_image_file(name) else others).append(rel)
    return sorted(images), sorted(others)


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{path}: unreadable settings file ({exc}); delete it or use a new --out") from exc
        if old != settings:
            diff = ", ".join(f"{k}={old.get(k)!r} (now {v!r})" for k, v in settings.items() if old.get(k) != v)
            raise InvalidInputError(
                f"{out}: was prepared with other settings: {diff}; use the same settings to resume, "
                "or a new --out folder"
            )
    else:
        atomic_write_bytes(path, (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode())


def _read_failures(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["path"]: row["reason"] for row in csv.DictReader(f) if row.get("path")}


def _write_failures(path: Path, failures: dict[str, str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "reason"])
    for rel in sorted(failures):
        writer.writerow([rel, failures[rel]])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _read_boxes(path: Path) -> dict[str, tuple[float, ...]]:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["path"]: tuple(float(row[c]) for c in BOX_COLUMNS[1:]) for row in csv.DictReader(f)
                if row.get("path")}


def _write_boxes(path: Path, boxes: dict[str, tuple[float, ...]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(BOX_COLUMNS)
    for rel in sorted(boxes):
        writer.writerow([rel, *(repr(float(v)) for v in boxes[rel])])  # repr: the exact float, read back the same
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _boxes_of(folder: Path, settings: dict) -> dict[str, tuple[float, ...]]:
    """The detector boxes of an earlier preparation of the same photos with the same detector settings."""
    folder = Path(folder)
    if not (folder / BOXES_FILE).is_file():
        raise InvalidInputError(f"{folder}: no {BOXES_FILE} (only a tight or margin preparation by this facelab "
                                "version keeps its boxes); leave out boxes_from to detect the faces again")
    try:
        theirs = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{folder}: no readable {SETTINGS_FILE} ({exc})") from exc
    same = ("min_face_size", "threshold", "chunk_size")
    if any(theirs.get(k) != settings[k] for k in same):
        raise InvalidInputError(f"{folder}: its faces were found with other detector settings ("
                                + ", ".join(f"{k}={theirs.get(k)!r}, here {settings[k]!r}" for k in same) + ")")
    return _read_boxes(folder / BOXES_FILE)


# --- atomic writes ---------------------------------------------------------------------------------------
def _save_atomic(target: Path, crop: np.ndarray) -> None:
    """Encode one crop by its extension (see :data:`SAVE_FORMATS`) and write it atomically."""
    fmt, options = SAVE_FORMATS.get(target.suffix.lower(), ("PNG", {}))
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, format=fmt, **options)
    atomic_write_bytes(target, buf.getvalue(), durable=False)


def _copy_atomic(src: Path, target: Path) -> None:
    atomic_write_bytes(target, Path(src).read_bytes(), durable=False)


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files left by a killed run (never complete outputs)."""
    for path in out.rglob(f".*{TMP_SUFFIX}*"):
        if path.is_file():
            path.unlink()


# --- one chunk ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    root: str
    out: str
    policy: str
    size: int
    margin: float
    min_face_size: int
    threshold: float
    batch_size: int
    max_pixels: int
    #: boxes of an earlier preparation (``boxes_from``): used instead of running the detector
    given_boxes: dict | None = field(default=None, hash=False, compare=False)


def _process_chunk(job: _Job, rels: list[str]) -> tuple[int, int, dict[str, str], dict[str, tuple]]:
    """Detect + crop one chunk (always all of it), write the missing outputs.

    Returns ``(written, already_there, failures, detector boxes)``.
    """
    root, out = Path(job.root), Path(job.out)
    arrays, readable, failures = [], [], {}
    for rel in rels:
        try:
            arrays.append(load_image(root / rel, max_pixels=job.max_pixels, name=rel))
            readable.append(rel)
        except FacelabError as exc:
            failures[rel] = f"{type(exc).__name__}: {_strip(rel, exc)}"
    if job.policy == "center":
        boxes = [[(0.0, 0.0, 1.0, 1.0)] for _ in arrays]  # ignored by the centre crop
    else:
        if job.given_boxes is not None:  # found by MTCNN with these settings in an earlier preparation
            boxes = [[job.given_boxes[rel]] if rel in job.given_boxes else [] for rel in readable]
        else:
            found = detect_faces(arrays, min_face_size=job.min_face_size, threshold=job.threshold,
                                 batch_size=job.batch_size, max_pixels=job.max_pixels)
            boxes = [[face.box] if (face := largest_face(faces)) is not None else [] for faces in found]
        for rel, bx in zip(readable, boxes):
            if not bx:
                failures[rel] = f"no face found (MTCNN, min_face_size={job.min_face_size}, threshold={job.threshold})"
    crops = crop_faces(arrays, boxes, size=job.size, policy=job.policy, margin=job.margin)
    crops = crops.round().clamp(0, 255).to(dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
    written = existing = k = 0
    for rel, bx in zip(readable, boxes):
        if not bx:
            continue
        target = out / rel
        if target.exists():
            existing += 1
        else:
            _save_atomic(target, crops[k])
            written += 1
        k += 1
    found = {} if job.policy == "center" else {rel: tuple(bx[0]) for rel, bx in zip(readable, boxes) if bx}
    return written, existing, failures, found


def _strip(name: str, exc: Exception) -> str:
    text = str(exc)
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


_WORKER_JOB: _Job | None = None


def _init_worker(job: _Job, threads: int) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job
    torch.set_num_threads(threads)


def _run_chunk_in_worker(rels: list[str]):
    return rels, _process_chunk(_WORKER_JOB, rels)


# --- the public entry point ---------------------------------------------------------------------------------
def prepare_dataset(root, out, policy: str = "tight", size: int = 112, margin: float = 0.2,
                    workers: int | None = None, progress: bool = True, *, min_face_size: int = 20,
                    threshold: float = 0.9, chunk_size: int = 32, batch_size: int = 32,
                    retry_failed: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                    boxes_from=None) -> PrepareReport:
    """Crop the largest face of every image under ``root`` into the same layout under ``out``.

    See the module docstring for the layout, formats, failures CSV and resuming.

    Parameters
    ----------
    policy : ``tight`` (paper), ``margin`` or ``center`` (see :func:`facelab.faces.crop_box`).
    size : side of the square crops in pixels.
    margin : fraction added on each side for ``policy="margin"``.
    workers : processes; ``None`` = :func:`facelab.parallel.default_workers` for torch work.
    progress : show a tqdm progress bar (images).
    chunk_size : images per unit of work (kept together for resumable, exact results;
        all images of a chunk are in memory at once).
    retry_failed : also retry images listed in an earlier ``failures.csv``.
    boxes_from : an earlier preparation of the same ``root`` (tight or margin, same detector settings
        and chunk size): its ``boxes.csv`` gives the faces, MTCNN does not run again.  The crops equal
        those of a new detection, which would find the same boxes in the same chunks.
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: dataset folder not found (expected a folder of images)")
    if policy not in CROP_POLICIES:
        raise InvalidInputError(f"policy {policy!r}: choose one of {', '.join(CROP_POLICIES)}")
    if root.resolve() == out.resolve():
        raise InvalidInputError(f"{out}: the output folder must differ from the dataset folder")
    if int(size) < 1 or int(chunk_size) < 1 or int(batch_size) < 1:
        raise InvalidInputError("size, chunk_size and batch_size must be >= 1")
    workers = check_workers(workers, torch_work=True)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"policy": policy, "size": int(size), "margin": float(margin) if policy == "margin" else None,
                "min_face_size": int(min_face_size) if policy != "center" else None,
                "threshold": float(threshold) if policy != "center" else None,
                "chunk_size": int(chunk_size)}
    given = None
    if boxes_from is not None and policy != "center":
        given = _boxes_of(boxes_from, settings)
    _check_settings(out, settings)
    _remove_stale_temporaries(out)

    images, others = _scan(root, out)
    failures_csv = out / FAILURES_FILE
    known = {} if retry_failed else _read_failures(failures_csv)
    known = {rel: reason for rel, reason in known.items() if rel in set(images)}

    copied = 0
    for rel in others:
        src, target = root / rel, out / rel
        if rel in (FAILURES_FILE, SETTINGS_FILE, BOXES_FILE):
            raise DatasetFormatError(f"{root / rel}: clashes with facelab's own {rel}; rename it")
        if not (target.exists() and target.stat().st_size == src.stat().st_size):
            _copy_atomic(src, target)
            copied += 1

    chunks = [images[i:i + chunk_size] for i in range(0, len(images), chunk_size)]
    existing_at_start = sum((out / rel).exists() for rel in images)
    pending = [c for c in chunks if any(not (out / r).exists() and r not in known for r in c)]
    failures = {rel: reason for rel, reason in known.items()}
    boxes_csv = out / BOXES_FILE
    boxes = {rel: box for rel, box in _read_boxes(boxes_csv).items() if rel in set(images)}
    job = _Job(str(root), str(out), policy, int(size), float(margin), int(min_face_size), float(threshold),
               int(batch_size), int(max_pixels), given)
    done = 0

    bar = tqdm(total=len(images), initial=len(images) - sum(map(len, pending)), unit="img",
               desc="prepare", disable=not progress)

    def record(rels, result):
        nonlocal done
        written, _, chunk_failures, chunk_boxes = result
        done += written
        for rel in rels:
            failures.pop(rel, None)
            boxes.pop(rel, None)
        failures.update(chunk_failures)
        boxes.update(chunk_boxes)
        _write_failures(failures_csv, failures)
        if policy != "center":
            _write_boxes(boxes_csv, boxes)
        bar.update(len(rels))

    try:
        if workers == 1 or len(pending) <= 1:
            for rels in pending:
                record(rels, _process_chunk(job, rels))
        else:
            _run_pool(job, pending, workers, record)
    finally:
        bar.close()
    _write_failures(failures_csv, failures)
    return PrepareReport(root=root, out=out, images=len(images), done=done, skipped_existing=existing_at_start,
                         failed=len(failures), copied=copied, failures_csv=failures_csv,
                         failures=sorted(failures.items()))


def _run_pool(job: _Job, pending: list[list[str]], workers: int, record) -> None:
    """Chunks over a spawn-context process pool (fork after torch started threads can deadlock)."""
    threads = max(1, usable_cpus() // workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(job, threads)) as pool:
            futures = [pool.submit(_run_chunk_in_worker, rels) for rels in pending]
            try:
                for future in as_completed(futures):
                    record(*future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BrokenProcessPool as exc:
        raise InvalidInputError(
            "prepare: worker processes died while starting; in a script, call prepare_dataset under "
            "`if __name__ == '__main__':` (Python's spawn start method re-imports the script), or use workers=1"
        ) from exc


__all__ = ["prepare_dataset", "PrepareReport", "SAVE_FORMATS"]
