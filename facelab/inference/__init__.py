"""Inference: one network runner for torch and ONNX Runtime (:mod:`~facelab.inference.runtime`), the photo and
video analyzer (:mod:`~facelab.inference.analyze`), face tracks (:mod:`~facelab.inference.tracking`), per-frame
features of clips (:mod:`~facelab.inference.video`), the paper's statistics pooling
(:mod:`~facelab.inference.pooling`) and ONNX export (:mod:`~facelab.inference.onnx_export`)."""
