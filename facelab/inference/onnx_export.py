"""Export a facelab network to ONNX and run it with ONNX Runtime (the ``onnx`` extra).

The exported graph is self-contained, so any ONNX runtime (phone, browser, C++) can use it:

* input ``image``: ``N x 3 x S x S`` float32, **RGB**, values in ``[0, 255]`` -- the raw
  tight face crops; the checkpoint's mean/std normalisation is inside the graph;
* outputs: one per head, named after it (``emotion``, ``age``, ``gender``, ``race``,
  ``identity`` -- the logits), plus ``features`` (the penultimate vector x);
* the batch axis ``N`` is dynamic; ``S`` is fixed (the checkpoint's image size);
* the checkpoint's JSON config (backbone, heads, label names, preprocessing) is stored in
  the model's metadata under ``facelab_config``, so the file alone says what each output means.

Needs ``pip install 'facelab[onnx]'`` (packages ``onnx`` and ``onnxruntime``); both are
imported only when used.
"""
from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab.checkpoints import as_model
from facelab.errors import CheckpointError, InvalidInputError
from facelab.faces import resize_crops
from facelab.paths import atomic_write_bytes

#: ONNX operator set used for export (>= 17).
ONNX_OPSET = 17
#: Name of the graph input.
INPUT_NAME = "image"
#: Name of the feature output (besides one output per head).
FEATURES_NAME = "features"
#: Metadata key holding the facelab config (same key as in safetensors checkpoints).
CONFIG_KEY = "facelab_config"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise InvalidInputError(
            f"the ONNX backend needs the package {module!r}, which is not installed; "
            "run  pip install 'facelab[onnx]'  (or use backend='torch')"
        ) from exc


class NormalisedNet(nn.Module):
    """The network plus its normalisation, returning ``(head logits..., features)``: what is exported."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.head_names = list(net.heads.keys())
        mean = torch.tensor(net.preprocessing["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(net.preprocessing["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", -mean / std)

    def forward(self, image):
        x = self.net.features(image * self.scale + self.shift)
        return tuple(self.net.heads[name](x) for name in self.head_names) + (x,)


def export_onnx(checkpoint_or_model, out_path=None, img_size: int | None = None, *,
                opset: int = ONNX_OPSET):
    """Export a checkpoint (path) or :class:`facelab.models.MultiTaskNet` to ONNX.

    ``out_path``: where to write the ``.onnx`` file (atomically); ``None`` returns the
    bytes instead.  ``img_size``: crop side S baked into the graph (default: the
    checkpoint's image size).  The batch axis is dynamic.  Returns the path (or bytes).
    """
    onnx = _require("onnx")
    if opset < 17:
        raise InvalidInputError(f"opset={opset}: facelab exports with ONNX opset >= 17")
    model, source = as_model(checkpoint_or_model)
    model = copy.deepcopy(model).float().eval().cpu()
    config = dict(model.config)
    size = int(img_size or model.preprocessing["image_size"])
    if size < 16:
        raise InvalidInputError(f"img_size={size}: crops must be at least 16 pixels")
    model.preprocessing["image_size"] = size
    config["preprocessing"] = dict(model.preprocessing)
    module = NormalisedNet(model).eval()
    outputs = module.head_names + [FEATURES_NAME]
    buffer = io.BytesIO()
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buffer, dynamo=False, opset_version=int(opset),
            input_names=[INPUT_NAME], output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME] + outputs},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config, default=str)
    proto.producer_name = "facelab"
    data = proto.SerializeToString()
    if out_path is None:
        return data
    return atomic_write_bytes(Path(out_path), data)


class OnnxNetwork:
    """Runs an exported network with ONNX Runtime (CPU, fp32).

    ``model``: an ``.onnx`` file written by :func:`export_onnx`, or a checkpoint path /
    MultiTaskNet (exported in memory first).  The runner contract of
    :class:`facelab.inference.runtime.TorchNetwork`: ``features(crops)``, ``heads(x)``,
    ``logits(crops)``, ``labels``, ``head_sizes``, ``image_size``.
    """

    precision = "fp32"

    def __init__(self, model, *, threads: int | None = None):
        ort = _require("onnxruntime")
        if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx":
            path = Path(model)
            if not path.is_file():
                raise CheckpointError(f"{path}: ONNX file not found; export one with  facelab export-onnx")
            data, self.source = path.read_bytes(), os.fspath(path)
        else:
            data = export_onnx(model)
            self.source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "<MultiTaskNet>"
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise CheckpointError(f"{self.source}: not a loadable ONNX model ({exc}); re-export it") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise CheckpointError(
                f"{self.source}: this ONNX file has no facelab config in its metadata; "
                "export it with  facelab export-onnx CKPT OUT.onnx"
            )
        self.config = json.loads(meta[CONFIG_KEY])
        self.head_sizes = {k: int(v) for k, v in self.config["heads"].items()}
        self.labels = dict(self.config.get("labels") or {})
        self.image_size = int(self.config["preprocessing"]["image_size"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.head_names = [n for n in self.output_names if n != FEATURES_NAME]
        self._model_bytes, self._options, self._heads_session = data, options, None

    def _run(self, crops, names):
        x = crops if isinstance(crops, torch.Tensor) else torch.as_tensor(np.asarray(crops))
        x = resize_crops(x.float().cpu(), self.image_size)
        out = self.session.run(names, {INPUT_NAME: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        return dict(zip(names, out))

    def logits(self, crops) -> dict:
        """``{head: float32 logits}`` for raw RGB crops in [0, 255]."""
        return self._run(crops, self.head_names)

    def features(self, crops):
        """x, the penultimate features (numpy float32, N x D)."""
        return self._run(crops, [FEATURES_NAME])[FEATURES_NAME]

    def heads(self, features) -> dict:
        """``{head: float32 logits}`` for features x (N x D): the heads' part of the same graph.

        ``onnx.utils.Extractor`` cuts the sub-graph from the ``features`` tensor to the head outputs
        out of the exported model once (first call); it runs in its own ONNX Runtime session."""
        if self._heads_session is None:
            onnx, ort = _require("onnx.utils"), _require("onnxruntime")  # onnx.utils: not imported by onnx itself
            model = onnx.load_from_string(self._model_bytes)
            graph = onnx.utils.Extractor(model).extract_model([FEATURES_NAME], self.head_names)
            self._heads_session = ort.InferenceSession(graph.SerializeToString(), self._options,
                                                       providers=["CPUExecutionProvider"])
        x = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        out = self._heads_session.run(self.head_names, {FEATURES_NAME: np.ascontiguousarray(x, dtype=np.float32)})
        return dict(zip(self.head_names, out))


__all__ = ["ONNX_OPSET", "export_onnx", "OnnxNetwork"]
