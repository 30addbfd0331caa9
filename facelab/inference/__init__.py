"""Inference: one network runner for torch and ONNX Runtime (:mod:`~facelab.inference.runtime`,
:mod:`~facelab.inference.onnx_export`); the photo and video analyzer (:mod:`~facelab.inference.analyze`, with its
inputs and result rows in :mod:`~facelab.inference.inputs` and :mod:`~facelab.inference.rows`; drawing them is
:mod:`facelab.apps.annotate`); face tracks (:mod:`~facelab.inference.tracking`,
:mod:`~facelab.inference.appearance`); per-frame features of clips (:mod:`~facelab.inference.video`, gathering
:mod:`~facelab.inference.clip_features`, :mod:`~facelab.inference.video_tracks` and
:mod:`~facelab.inference.feature_cache`) and the paper's statistics pooling (:mod:`~facelab.inference.pooling`)."""
