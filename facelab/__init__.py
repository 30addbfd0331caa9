"""facelab: lightweight CNNs for face identity, age/gender/race and emotion recognition.

The public API is re-exported here and imported lazily (``import facelab`` stays fast;
torch and friends load on first use)::

    from facelab import load_image, detect_faces, crop_faces, MultiTaskNet, FaceAnalyzer

Images are RGB everywhere (``H x W x 3`` uint8).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    # errors and labels
    **{name: "errors" for name in (
        "FacelabError", "InvalidInputError", "ImageDecodeError", "UnsupportedFormatError", "ImageTooLarge",
        "VideoDecodeError", "CheckpointError", "UnsafeCheckpointError", "ModelDownloadError", "DatasetFormatError")},
    # input and faces
    "load_image": "io", "list_images": "io",
    "Face": "faces", "detect_faces": "faces", "largest_face": "faces", "crop_box": "faces", "crop_faces": "faces",
    "prepare_dataset": "prepare",
    # data
    **{name: "datasets" for name in (
        "FaceImageDataset", "FaceVideoDataset", "read_vggface2", "read_lfw", "read_utkface", "read_affectnet",
        "read_afew", "read_vgaf", "read_dataset")},
    "ensure_dataset": "synth.writers",
    # model, losses, training, evaluation
    "create_backbone": "models", "MultiTaskNet": "models",
    "class_weighted_cross_entropy": "losses", "age_expectation": "losses",
    "SAM": "sam",
    "train_identity": "train", "train_attributes": "train", "train_emotion": "train",
    "lfw_identification": "evaluate",
    "save_checkpoint": "checkpoints", "load_checkpoint": "checkpoints", "import_hsemotion": "checkpoints",
    "load_facenet": "checkpoints", "list_models": "zoo",
    # video and inference
    "frame_statistics": "pooling", "group_statistics": "pooling", "VideoDescriptor": "pooling",
    "iter_frames": "video", "video_features": "video",
    "FaceAnalyzer": "analyze",
    "FaceDemo": "demo",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in {"labels", "errors", "io", "faces", "datasets", "models", "losses", "sam", "train", "evaluate",
                "checkpoints", "pooling", "video", "analyze", "demo", "synth", "notebooks", "course", "viz",
                "prepare", "tour", "cli", "zoo", "paths", "legacy_pickle", "metrics"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")


def __dir__():
    return __all__
