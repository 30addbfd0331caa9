"""Readers for the face datasets' real on-disk layouts, as torch Datasets.

The same readers serve the real datasets (VGGFace2, LFW, UTKFace, AffectNet, AFEW,
VGAF) and the built-in face world (:mod:`facelab.synth.writers` writes exactly these
layouts), so a notebook switches from synthetic to real data by changing one path.

* ``read_vggface2``: ``ROOT/train/<person_id>/<img>.jpg`` (+ ``ROOT/train_list.txt``)
  -> labels ``identity``, ``person``
* ``read_lfw``: ``ROOT/<Name>/<Name>_0001.jpg`` (+ ``people.txt``, ``pairs.txt``)
  -> ``identity``, ``person``
* ``read_utkface``: ``ROOT/<age>_<gender>_<race>_<date>.jpg.chip.jpg`` -> ``age``, ``gender``, ``race``
* ``read_affectnet``: ``ROOT/train/<Class>/<img>.jpg`` or the official CSV -> ``emotion``
  (+ ``box``, ``valence``, ``arousal`` from the CSV)
* ``read_afew``: ``ROOT/Train/<Emotion>/<clip>.avi`` (or a folder of frames) -> ``emotion`` (7 classes)
* ``read_vgaf``: ``ROOT/Train/<clip>.mp4`` + ``ROOT/Train_labels.txt`` -> ``group``
  (Positive / Neutral / Negative)
* ``read_scenes``: ``ROOT/images/*.jpg`` + ``ROOT/boxes.json`` -> ``boxes``

Each reader lives in its own module of :mod:`facelab.data.layouts` (with its ``*_LAYOUT``
string); this module gathers them and :func:`read_dataset` picks one by name.  Images are
returned as ``H x W x 3`` uint8 **RGB** numpy arrays (never BGR).

Nothing is dropped silently: every entry a reader does not keep (a malformed file
name, a CSV row with AffectNet's "No-Face" id, an unknown class folder ...) is
recorded in ``dataset.skipped`` as ``(entry, reason)``; ``dataset.report()``
summarises the counts and ``dataset.write_skipped_csv(path)`` writes them all.
A folder that is not in the expected layout at all raises
:class:`facelab.errors.DatasetFormatError` naming the layout that was expected.
"""
from __future__ import annotations

from facelab.data.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_image_file, is_video_file
from facelab.data.layouts.afew import AFEW_LAYOUT, read_afew
from facelab.data.layouts.affectnet import AFFECTNET_CSV_COLUMNS, AFFECTNET_LAYOUT, read_affectnet
from facelab.data.layouts.dataset import FaceImageDataset, FaceVideoDataset, iter_clip_frames
from facelab.data.layouts.folders import scan_image_folder
from facelab.data.layouts.lfw import LFW_LAYOUT, read_lfw
from facelab.data.layouts.scenes import SCENES_LAYOUT, read_scenes
from facelab.data.layouts.utkface import UTKFACE_AGE_RANGE, UTKFACE_LAYOUT, parse_utkface_name, read_utkface
from facelab.data.layouts.vgaf import VGAF_LAYOUT, read_vgaf
from facelab.data.layouts.vggface2 import VGGFACE2_LAYOUT, read_vggface2
from facelab.errors import DatasetFormatError

READERS = {"vggface2": read_vggface2, "lfw": read_lfw, "utkface": read_utkface,
           "affectnet": read_affectnet, "afew": read_afew, "vgaf": read_vgaf, "scenes": read_scenes}


def read_dataset(name, root, **kw):
    """``read_dataset("affectnet", root, split="val")`` -> the reader for that layout."""
    try:
        reader = READERS[name]
    except KeyError:
        raise DatasetFormatError(f"unknown dataset '{name}'; choose one of {', '.join(READERS)}") from None
    return reader(root, **kw)


__all__ = [
    "FaceImageDataset", "FaceVideoDataset", "iter_clip_frames", "scan_image_folder",
    "read_vggface2", "read_lfw", "read_utkface", "parse_utkface_name", "read_affectnet",
    "read_afew", "read_vgaf", "read_scenes", "read_dataset", "READERS",
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "is_image_file", "is_video_file",
    "VGGFACE2_LAYOUT", "LFW_LAYOUT", "UTKFACE_LAYOUT", "UTKFACE_AGE_RANGE", "AFFECTNET_LAYOUT",
    "AFFECTNET_CSV_COLUMNS", "AFEW_LAYOUT", "VGAF_LAYOUT", "SCENES_LAYOUT",
]
