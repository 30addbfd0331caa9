"""Saving and loading models safely.

Layout of a facelab checkpoint: ONE file ``NAME.safetensors`` holding the weights *and* the
configuration (JSON, in the safetensors metadata under ``"facelab_config"``), plus a
readable copy of that configuration in ``NAME.json`` beside it (for people; loading ignores
it).  Because weights and config live in one file, they can never get out of step.

* safetensors cannot run code when loaded (unlike pickle / ``torch.load``).
* Every write is atomic: the bytes go to a temporary file in the same folder, are flushed
  to disk (fsync), then renamed over the old file (``os.replace``).  A crash mid-save leaves
  the previous checkpoint intact (at worst a ``.NAME.*.tmp`` file is left behind).
* ``load_checkpoint`` rebuilds the network from the config and refuses tensors that do not
  fit it (:class:`facelab.errors.CheckpointError` names the mismatch).
* Training state for resuming (``NAME.state.pt``: weights, optimizer, epoch, RNG states)
  is read with ``torch.load(weights_only=True)``: plain tensors and containers only.
* Published HSEmotion weights are whole pickled timm models; :func:`import_hsemotion`
  converts one into a facelab checkpoint, but only with ``trust_pickle=True``.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from . import labels as L
from .errors import CheckpointError, FacelabError, UnsafeCheckpointError
from .models import MultiTaskNet

FORMAT = "facelab-checkpoint"
FORMAT_VERSION = 1
STATE_FORMAT = "facelab-training-state"
CONFIG_KEY = "facelab_config"


# --- paths and atomic writes ------------------------------------------------------
def checkpoint_path(path) -> Path:
    """``runs/emotion`` or ``runs/emotion.safetensors`` -> ``runs/emotion.safetensors``."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def _stem(path) -> Path:
    path = Path(path)
    for suffix in (".safetensors", ".state.pt", ".json"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def config_path(path) -> Path:
    """The readable JSON copy of a checkpoint's config: ``runs/emotion.json``."""
    stem = _stem(path)
    return stem.with_name(stem.name + ".json")


def training_state_path(path) -> Path:
    """Where training state for resuming lives: ``runs/emotion.state.pt``."""
    stem = _stem(path)
    return stem.with_name(stem.name + ".state.pt")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old or the new file, never
    a half-written one: temporary file in the same folder, fsync, ``os.replace``.  The file
    gets the usual permissions (0666 minus the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some file systems do not allow fsync on folders
        pass
    return path


# --- save / load --------------------------------------------------------------------
def checkpoint_config(model: MultiTaskNet, extra_config: dict | None = None) -> dict:
    """The JSON configuration stored with the weights."""
    from . import __version__

    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "facelab_version": __version__}
    config.update(model.config)  # backbone, heads, labels, preprocessing (image size, mean/std, crop)
    config["extra"] = dict(extra_config or {})
    return config


def save_checkpoint(model: MultiTaskNet, path, *, extra_config: dict | None = None) -> Path:
    """Save ``model`` as ``path.safetensors`` (weights + config) and ``path.json`` (config copy).

    ``extra_config``: anything JSON-serialisable to keep with it (training settings,
    dataset, metrics).  Returns the ``.safetensors`` path.
    """
    from safetensors.torch import save as safetensors_bytes

    path = checkpoint_path(path)
    config = checkpoint_config(model, extra_config)
    try:
        config_json = json.dumps(config, indent=2, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"extra_config for {path} is not JSON-serialisable: {exc}") from exc
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={CONFIG_KEY: config_json}))
    atomic_write_bytes(config_path(path), (config_json + "\n").encode())
    return path


def _json_default(obj):
    if hasattr(obj, "tolist"):  # numpy / torch arrays and scalars
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _resolve(path) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (checkpoint_path(path), training_state_path(path)):
        if candidate.is_file():
            return candidate
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file (NAME.safetensors)")
    raise CheckpointError(f"no checkpoint at {path} (looked for {path} and {checkpoint_path(path)})")


def read_checkpoint_config(path) -> dict:
    """The config stored inside a facelab ``.safetensors`` checkpoint (weights not loaded)."""
    from safetensors import safe_open

    path = _resolve(path)
    if path.suffix != ".safetensors":
        return load_training_state(path)["config"]
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt files
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); it may be truncated") from exc
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{path} has no facelab config in its metadata: it is a safetensors file, but not a facelab "
            "checkpoint (save one with facelab.checkpoints.save_checkpoint)"
        )
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the stored config is not valid JSON ({exc})") from exc
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {config.get('format')!r}")
    return config


def load_checkpoint(path, *, device="cpu") -> MultiTaskNet:
    """Rebuild the network from a facelab checkpoint (``.safetensors``, or a ``.state.pt``
    training state) and load its weights.  Returns the model in eval mode.

    Raises :class:`CheckpointError` if the file is missing or corrupt, or if its config does
    not match its tensors (e.g. wrong backbone, wrong number of classes in a head).
    """
    from safetensors.torch import load_file

    path = _resolve(path)
    if path.suffix == ".safetensors":
        config = read_checkpoint_config(path)
        try:
            tensors = load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"{path}: could not read the tensors ({exc}); the file may be truncated") from exc
    else:
        state = load_training_state(path)
        config, tensors = state["config"], state["model"]
    model = model_from_config(config, source=path)
    check_tensors_match(model, tensors, config, source=path)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def model_from_config(config: dict, *, source="checkpoint") -> MultiTaskNet:
    """Build an (untrained) network from a checkpoint config, with a CheckpointError on failure."""
    try:
        return MultiTaskNet.from_config(config)
    except FacelabError as exc:
        raise CheckpointError(f"{source}: its config cannot be built: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: incomplete or invalid config ({type(exc).__name__}: {exc})") from exc


def check_tensors_match(model: nn.Module, tensors: dict, config: dict, *, source="checkpoint") -> None:
    """Raise CheckpointError naming every way ``tensors`` do not fit the network of ``config``."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    problems = []
    # Heads first: "config says 7 emotion classes, tensors have 8" is the common mistake.
    for head, size in config.get("heads", {}).items():
        key = f"heads.{head}.weight" if f"heads.{head}.weight" in expected else f"heads.{head}.2.weight"
        if key in found and found[key] != expected[key]:
            problems.append(
                f"head {head!r}: config says {size} outputs from {config.get('num_features')} features, "
                f"the tensors have {found[key][0]} outputs from {found[key][1]} features"
            )
    heads_in_tensors = {name.split(".")[1] for name in found if name.startswith("heads.")}
    for head in sorted(heads_in_tensors - set(config.get("heads", {}))):
        problems.append(f"the tensors contain a {head!r} head that the config does not list")
    missing = [k for k in expected if k not in found and not k.startswith("heads.")]
    unexpected = [k for k in found if k not in expected and not k.startswith("heads.")]
    wrong_shape = [k for k in expected if k in found and found[k] != expected[k] and not k.startswith("heads.")]
    missing_heads = sorted({k.split(".")[1] for k in expected if k not in found and k.startswith("heads.")})
    for head in missing_heads:
        problems.append(f"the config lists a {head!r} head but the tensors have none")
    if missing or unexpected or wrong_shape:
        detail = []
        if missing:
            detail.append(f"{len(missing)} backbone tensors missing (e.g. {missing[:3]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if wrong_shape:
            k = wrong_shape[0]
            detail.append(f"{len(wrong_shape)} with the wrong shape (e.g. {k}: {found[k]} instead of {expected[k]})")
        problems.append(
            f"config says backbone {config.get('backbone')!r} but the tensors do not fit it: " + "; ".join(detail)
        )
    if problems:
        raise CheckpointError(f"{source}: config and tensors do not match: " + " | ".join(problems))


# --- training state (resume) ----------------------------------------------------------
def save_training_state(path, state: dict) -> Path:
    """Atomically save a training-state dict (tensors, numbers, strings, lists, dicts)."""
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buffer)
    return atomic_write_bytes(training_state_path(path), buffer.getvalue())


def load_training_state(path) -> dict:
    """Read a training state saved by :func:`save_training_state` (``weights_only=True``:
    no code can run while loading)."""
    path = Path(path)
    if not path.is_file() and training_state_path(path).is_file():
        path = training_state_path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state at {path} (expected {training_state_path(path)})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise UnsafeCheckpointError(
                f"{path} contains pickled Python objects, which can run code when loaded; facelab only loads "
                "plain tensors from .pt files. If it is a published HSEmotion model you trust, convert it with "
                "facelab.checkpoints.import_hsemotion(path, out, trust_pickle=True)"
            ) from exc
        raise CheckpointError(f"{path}: could not read the training state ({exc}); the file may be truncated") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a facelab training state (no {STATE_FORMAT!r} marker)")
    return state


# --- HSEmotion import -------------------------------------------------------------------
def _guess_architecture(model: nn.Module, path: Path) -> str | None:
    for cfg_name in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, cfg_name, None)
        if isinstance(cfg, dict) and cfg.get("architecture"):
            return cfg["architecture"]
    name = path.name.lower()
    if "enet_b0" in name:
        return "tf_efficientnet_b0"
    if "enet_b2" in name:
        return "tf_efficientnet_b2"
    return None


def _guess_image_size(model: nn.Module, architecture: str, path: Path) -> int:
    name = f"{architecture} {path.name}".lower()
    if "b0" in name:
        return 224
    if "b2" in name:
        return 260
    for cfg_name in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, cfg_name, None)
        if isinstance(cfg, dict) and cfg.get("input_size"):
            return int(cfg["input_size"][-1])
    return 224


def _classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """(module name, final Linear layer) of a timm model's classifier."""
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "classifier", None)
    if classifier is None:
        raise CheckpointError("the pickled model has no classifier (expected a timm model with .classifier)")
    linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)] if isinstance(classifier, nn.Module) else []
    if len(linears) != 1:
        raise CheckpointError(
            f"expected the classifier to be one Linear layer (optionally in a Sequential), found {classifier!r}"
        )
    prefix = next(name for name, module in model.named_modules() if module is classifier)
    return prefix, linears[0]


def import_hsemotion(path, out, *, trust_pickle: bool = False, backbone: str | None = None,
                     image_size: int | None = None) -> MultiTaskNet:
    """Convert a published HSEmotion ``.pt`` file (a whole pickled timm model, saved with
    ``torch.save(model)``) into a facelab checkpoint ``out.safetensors``.

    Unpickling runs code stored in the file, so this refuses with
    :class:`UnsafeCheckpointError` unless ``trust_pickle=True``.  The emotion head becomes the
    model's classifier, with the alphabetical 8- or 7-class labels (facelab.labels), chosen by
    its number of outputs; input size 224 px for B0 and 260 px for B2 (else from the model's
    config, or ``image_size``).  ``backbone`` overrides the guessed timm architecture.
    After conversion the logits are compared with the original model's on a random batch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no file at {path}")
    if not trust_pickle:
        raise UnsafeCheckpointError(
            f"{path} is a pickled PyTorch model: loading it runs code stored in the file. Only if you trust its "
            f"source (e.g. the official HSEmotion release), call import_hsemotion({str(path)!r}, out, trust_pickle=True)"
        )
    try:
        original = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"could not unpickle {path} ({type(exc).__name__}: {exc}). Whole pickled models depend on the timm "
            "version that saved them; load it where that version is installed and save model.state_dict() instead"
        ) from exc
    if not isinstance(original, nn.Module):
        raise CheckpointError(f"{path} holds a {type(original).__name__}, not a whole model (torch.save(model))")
    original.eval()
    architecture = backbone or _guess_architecture(original, path)
    if architecture is None:
        raise CheckpointError(f"cannot tell which timm architecture {path} is; pass backbone='timm_model_name'")
    prefix, linear = _classifier(original)
    num_classes = linear.out_features
    if num_classes not in (7, 8):
        raise CheckpointError(f"{path}: the classifier has {num_classes} outputs; HSEmotion models have 8 or 7")

    model = MultiTaskNet(architecture, pretrained=False)
    backbone_state = {k: v for k, v in original.state_dict().items() if not k.startswith(prefix + ".")}
    try:
        model.backbone.load_state_dict(backbone_state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: its weights do not fit timm's {architecture!r} ({exc}); pass the right backbone= name"
        ) from exc
    head = model.add_head("emotion", num_classes, labels=list(L.emotions(num_classes)))
    with torch.no_grad():
        head.weight.copy_(linear.weight)
        head.bias.copy_(linear.bias)
    model.preprocessing.update(
        image_size=int(image_size or _guess_image_size(original, architecture, path)), crop="tight"
    )
    model.eval()

    difference = _compare_logits(original, model, model.preprocessing["image_size"])
    if difference is not None and difference > 1e-4:
        raise CheckpointError(
            f"{path}: converted logits differ from the original by {difference:.2g}; the architecture "
            f"{architecture!r} is probably not the one that was trained (pass backbone=...)"
        )
    save_checkpoint(model, out, extra_config={
        "imported_from": str(path.name), "source": "HSEmotion (pickled timm model)",
        "max_abs_logit_difference": difference,
    })
    return model


def _compare_logits(original: nn.Module, model: MultiTaskNet, size: int) -> float | None:
    """Largest |logit difference| between the original and the converted model on a random batch."""
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        try:
            expected = original(images)
        except Exception as exc:  # an old pickled class may not run under this timm version
            warnings.warn(f"could not run the original model to check the conversion ({exc})", stacklevel=3)
            return None
        converted = model(images)["emotion"]
    return float((expected - converted).abs().max())


__all__ = [
    "checkpoint_path", "config_path", "training_state_path", "atomic_write_bytes",
    "checkpoint_config", "save_checkpoint", "read_checkpoint_config", "load_checkpoint",
    "model_from_config", "check_tensors_match", "save_training_state", "load_training_state",
    "import_hsemotion",
]
