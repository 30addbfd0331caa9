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
    "load_image": "data.io", "list_images": "data.io",
    "Face": "faces", "detect_faces": "faces", "largest_face": "faces", "crop_box": "faces", "crop_faces": "faces",
    "prepare_dataset": "data.prepare",
    # data
    **{name: "data.datasets" for name in (
        "FaceImageDataset", "FaceVideoDataset", "read_vggface2", "read_lfw", "read_utkface", "read_affectnet",
        "read_afew", "read_vgaf", "read_dataset")},
    "ensure_dataset": "synth.writers",
    # model, losses, training, evaluation
    "create_backbone": "models", "MultiTaskNet": "models",
    "class_weighted_cross_entropy": "losses", "age_expectation": "losses",
    "SAM": "sam",
    "train_identity": "training.train", "train_attributes": "training.train", "train_emotion": "training.train",
    "lfw_identification": "training.evaluate", "predict": "training.evaluate",
    "save_checkpoint": "checkpoints", "load_checkpoint": "checkpoints", "import_hsemotion": "checkpoints",
    "load_facenet": "checkpoints", "list_models": "zoo",
    # video and inference
    **{name: "inference.pooling" for name in ("frame_statistics", "group_statistics", "VideoDescriptor")},
    "iter_frames": "data.frames", "video_features": "inference.video",
    "FaceAnalyzer": "inference.analyze",
    "make_network": "inference.runtime", "Runner": "inference.runtime", "export_onnx": "inference.onnx_export",
    "FaceDemo": "apps.demo",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

#: subpackages and top-level modules reachable as ``facelab.NAME`` without an import
_SUBMODULES = {"data", "training", "inference", "apps", "synth", "labels", "errors", "paths", "faces", "models",
               "losses", "sam", "metrics", "checkpoints", "zoo", "legacy_pickle"}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")


def __dir__():
    return __all__
