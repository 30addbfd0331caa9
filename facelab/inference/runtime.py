"""Running a network on face crops: the one inference contract of facelab.

A *runner* holds one network and turns raw face crops into answers::

    runner = make_network(model)            # a MultiTaskNet, a checkpoint path or a zoo name
    x = runner.features(crops)              # N x D penultimate features x (numpy float32)
    logits = runner.heads(x)                # {head: N x C logits} (numpy float32) from those features
    logits = runner.logits(crops)           # the same as runner.heads(runner.features(crops)), in one call
    runner.labels, runner.head_sizes, runner.image_size, runner.config

``crops`` are ``N x 3 x S x S`` RGB in ``[0, 255]`` (what :func:`facelab.faces.crop_faces`
returns); each runner normalises them with its checkpoint's mean/std itself.  Two runners keep
this contract (:class:`Runner`): :class:`TorchNetwork` (eager torch, or traced and frozen, bf16
where the hardware has it) and :class:`facelab.inference.onnx_export.OnnxNetwork` (ONNX Runtime,
fp32).  The analyzer (:mod:`facelab.inference.analyze`), the video pipeline
(:mod:`facelab.inference.video`) and the evaluation protocols (:func:`facelab.training.evaluate.predict`)
run every network through one.  A model argument is resolved once, by :func:`make_network`.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from facelab.checkpoints import as_model
from facelab.errors import InvalidInputError
from facelab.faces import resize_crops
from facelab.inference.onnx_export import OnnxNetwork
from facelab.metrics import softmax  # noqa: F401 - re-exported: the analyzer's probabilities

#: Precisions FaceAnalyzer understands ("auto" = bf16 where the CPU/GPU supports it natively).
PRECISIONS = ("auto", "bf16", "fp32")
#: Inference backends.
BACKENDS = ("torch", "onnx")
# --- precision -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True if this CPU computes bfloat16 natively (x86: AMX-BF16 or AVX512-BF16; ARM: BF16).

    Read from the ``flags`` / ``Features`` lines of ``/proc/cpuinfo`` (Linux).  Elsewhere
    (macOS, Windows) we cannot tell cheaply and answer False, so ``precision="auto"`` falls
    back to fp32 there; pass ``precision="bf16"`` to force it.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return bf16_in_cpuinfo(f.read(400_000))
    except OSError:
        return False


#: CPU flags that mean native bfloat16 arithmetic.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16", "bf16"})


def bf16_in_cpuinfo(text: str) -> bool:
    """Does the text of ``/proc/cpuinfo`` list a native-bf16 flag (:data:`BF16_CPU_FLAGS`)?"""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & BF16_CPU_FLAGS)


def resolve_precision(precision: str = "auto", device="cpu", backend: str = "torch") -> str:
    """``"auto"`` -> ``"bf16"`` where the hardware has native bf16, else ``"fp32"``."""
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if backend == "onnx":
        if precision == "bf16":
            raise InvalidInputError("the onnx backend runs in fp32; use backend='torch' for precision='bf16'")
        return "fp32"
    if precision != "auto":
        return precision
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        return "bf16" if cpu_supports_bf16() else "fp32"
    return "fp32"


# --- network runners -----------------------------------------------------------------------
@runtime_checkable
class Runner(Protocol):
    """What every network runner offers (the inference contract; see the module docstring)."""

    config: dict
    labels: dict
    head_sizes: dict
    image_size: int
    precision: str

    def features(self, crops) -> np.ndarray:
        """Raw RGB crops in [0, 255] (N x 3 x S x S) -> x, the penultimate features (N x D float32)."""

    def heads(self, features) -> dict:
        """Features x (N x D) -> ``{head: N x C float32 logits}``."""

    def logits(self, crops) -> dict:
        """``heads(features(crops))``."""


@contextlib.contextmanager
def onednn_fusion(enabled: bool = True):
    """Turn on TorchScript's oneDNN Graph fuser (conv + bias + activation in one CPU kernel,
    fp32 and bf16) inside the block only; the global setting is restored afterwards."""
    if not enabled:
        yield
        return
    previous = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(previous)


def batch_bucket(n: int, batch_size: int) -> int:
    """The padded batch size for ``n`` crops: the next power of two, at most ``batch_size``
    (``n`` itself above it).  A compiled graph then sees only a handful of shapes."""
    if n >= batch_size:
        return n
    return min(1 << max(0, n - 1).bit_length(), batch_size)


class SpatialMeanAsPool(torch.overrides.TorchFunctionMode):
    """Traces ``x.mean((2, 3))`` of an N x C x H x W tensor as ``avg_pool2d`` over the
    whole map (the same numbers).  PyTorch's mean over H, W of a channels_last bf16
    tensor takes a slow path: ~17% of EfficientNet-B0's time in its squeeze-excitation
    blocks, 10x what oneDNN's pooling takes (benchmarks/bench_analyze.py).  Set
    ``network.mean_as_pool = False`` before the first call to trace the plain mean."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.mean, torch.Tensor.mean) and kwargs.get("dtype") is None and args:
            x, dim = args[0], args[1] if len(args) > 1 else kwargs.get("dim")
            keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            dims = tuple(dim) if isinstance(dim, (list, tuple)) else (dim,)
            if isinstance(x, torch.Tensor) and x.ndim == 4 and all(isinstance(d, int) for d in dims) \
                    and sorted(d % 4 for d in dims) == [2, 3]:
                out = torch.nn.functional.avg_pool2d(x, tuple(x.shape[-2:]))
                return out if keep else out.flatten(1)
        return func(*args, **kwargs)


class TorchNetwork:
    """Runs one :class:`facelab.models.MultiTaskNet` on raw crops, fast.

    ``logits(crops)``: crops are ``N x 3 x S x S`` RGB in ``[0, 255]`` (float or uint8);
    returns ``{head: float32 logits}``.  The input is normalised with the model's mean/std
    (one multiply-add), converted to ``channels_last`` and, for ``precision="bf16"``, to
    bfloat16.  On first use the backbone is traced and frozen with TorchScript
    (``torch.jit.freeze`` folds every BatchNorm into its convolution) and, on CPU, run with
    the oneDNN Graph fuser (convolution + activation fused); the result is checked against
    the eager backbone once, and the eager backbone is kept if tracing fails or disagrees.
    Batches are zero-padded to a power of two (:func:`batch_bucket`) so the compiled graph
    sees few shapes.  The heads always run in fp32.  The caller's model is not modified.
    """

    def __init__(self, model, *, precision: str = "fp32", device="cpu", freeze: bool = True,
                 batch_size: int = 32, image_size: int | None = None):
        model, self.source = as_model(model)
        if precision not in ("bf16", "fp32"):
            raise InvalidInputError(f"precision={precision!r}: TorchNetwork runs 'bf16' or 'fp32'")
        self.config = model.config
        self.labels = dict(model.label_names)
        self.head_sizes = dict(model.head_sizes)
        self.image_size = int(image_size or model.preprocessing["image_size"])  # the crop side it runs at
        self.precision = precision
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        mean = torch.tensor(model.preprocessing["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(model.preprocessing["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale + shift
        self.scale = (1.0 / (255.0 * std)).to(self.device)
        self.shift = (-mean / std).to(self.device)

        net = copy.deepcopy(model).eval().to(self.device)
        for p in net.parameters():
            p.requires_grad_(False)
        self.head_modules = net.heads.float()
        self.backbone = net.backbone.to(dtype=self.dtype, memory_format=torch.channels_last)
        self.frozen = False
        self.fused = False
        self._want_freeze = bool(freeze)

    def freeze(self) -> "TorchNetwork":
        """Trace + freeze the backbone (see the class docstring).  Done once, on first use."""
        self._want_freeze = False
        if self.frozen:
            return self
        fuse = self.device.type == "cpu" and hasattr(torch.jit, "enable_onednn_fusion")
        example = self.prepare(255 * torch.rand(2, 3, self.image_size, self.image_size,
                                                generator=torch.Generator().manual_seed(0)))
        tolerance = 0.05 if self.dtype == torch.bfloat16 else 1e-3

        try:
            with torch.no_grad(), warnings.catch_warnings(), onednn_fusion(fuse):
                warnings.simplefilter("ignore")
                expected = self.backbone(example).float()
                with SpatialMeanAsPool() if getattr(self, "mean_as_pool", True) else contextlib.nullcontext():
                    traced = torch.jit.trace(self.backbone, example, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
                for _ in range(3):  # TorchScript profiles the first calls, then compiles
                    got = frozen(example).float()
            scale = float(expected.abs().max()) or 1.0
            if not float((got - expected).abs().max()) <= tolerance * scale:
                return self  # the compiled graph disagrees with eager: keep eager
        except Exception:  # noqa: BLE001 - any tracing problem: keep the eager module
            return self
        self.backbone, self.frozen, self.fused = frozen, True, fuse
        return self

    def prepare(self, crops, rows: int | None = None):
        """Raw RGB crops in [0, 255] -> normalised, channels_last, in the run dtype.

        Normalisation, the cast to the run dtype and the layout change are one pass
        (``addcmul`` writing straight into the channels_last output).  ``rows`` > N pads
        the batch with zeros (see :func:`batch_bucket`)."""
        if not isinstance(crops, torch.Tensor):
            crops = torch.as_tensor(np.asarray(crops))
        x = crops.to(self.device, non_blocking=True)
        if not x.is_floating_point() or x.dtype == torch.float64:
            x = x.float()
        x = resize_crops(x, self.image_size)
        n = len(x)
        out = torch.empty((max(n, rows or 0), *x.shape[1:]), dtype=self.dtype, device=self.device,
                          memory_format=torch.channels_last)
        torch.addcmul(self.shift, x, self.scale, out=out[:n])  # x * scale + shift, in fp32
        if len(out) > n:
            out[n:].zero_()
        return out

    def backbone_features(self, crops) -> torch.Tensor:
        """x as a torch tensor on the run device (fp32, N x D): what the heads take."""
        if self._want_freeze:
            self.freeze()
        n = len(crops)
        x = self.prepare(crops, batch_bucket(n, self.batch_size) if self.frozen and n else None)
        with torch.inference_mode(), onednn_fusion(self.fused):
            return self.backbone(x)[:n].float()

    def features(self, crops) -> np.ndarray:
        """x: the penultimate features (numpy float32, N x D), as :meth:`OnnxNetwork.features`."""
        return self.backbone_features(crops).cpu().numpy()

    def heads(self, features) -> dict:
        """``{head: float32 logits}`` (numpy) for features x (N x D, numpy or torch); the heads run in fp32."""
        with torch.inference_mode():
            x = torch.as_tensor(features).to(self.device, torch.float32)
            return {name: head(x).float().cpu().numpy() for name, head in self.head_modules.items()}

    def logits(self, crops) -> dict:
        """``{head: float32 logits}`` (numpy) for raw RGB crops in [0, 255]: :meth:`heads` of :meth:`features`,
        without the features' round trip through numpy."""
        return self.heads(self.backbone_features(crops))


def is_onnx_file(model) -> bool:
    """Is the model argument a path to an ``.onnx`` file (which only ``backend="onnx"`` runs)?"""
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"


def is_runner(obj) -> bool:
    """Is ``obj`` already a runner (:class:`TorchNetwork`, :class:`OnnxNetwork` or alike), not a model?"""
    return not isinstance(obj, torch.nn.Module) and all(
        callable(getattr(obj, a, None)) for a in ("features", "heads", "logits")) and hasattr(obj, "image_size")


def make_network(model, *, backend: str = "torch", precision: str = "fp32", device="cpu", batch_size: int = 32,
                 freeze: bool = True, image_size: int | None = None):
    """A :class:`Runner`: ``.features(crops)``, ``.heads(x)``, ``.logits(crops)``, ``.labels``, ``.image_size``...

    ``model``: a MultiTaskNet, a checkpoint path or a zoo name (resolved here, once), or with
    ``backend="onnx"`` also an ``.onnx`` file; a runner is returned as it is.  ``freeze=False``: the
    torch runner stays eager (the numbers of ``model(images)``, up to the order of the normalisation's
    arithmetic).  ``image_size``: the crop side to run a torch network at (default: its checkpoint's;
    an ONNX graph has its side built in)."""
    if is_runner(model):
        runner = model
    elif backend == "torch":
        if is_onnx_file(model):
            raise InvalidInputError(f"{model}: an ONNX file needs backend='onnx'")
        return TorchNetwork(model, precision=precision, device=device, batch_size=batch_size, freeze=freeze,
                            image_size=image_size)
    elif backend == "onnx":
        runner = OnnxNetwork(model)
    else:
        raise InvalidInputError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    if image_size and int(image_size) != runner.image_size:
        raise InvalidInputError(f"image_size={image_size}: this {type(runner).__name__} runs at "
                                f"{runner.image_size} px only")
    return runner


__all__ = ["PRECISIONS", "BACKENDS", "BF16_CPU_FLAGS", "cpu_supports_bf16", "bf16_in_cpuinfo", "resolve_precision",
           "onednn_fusion", "batch_bucket", "Runner", "TorchNetwork", "OnnxNetwork", "is_onnx_file", "is_runner",
           "make_network", "softmax"]
