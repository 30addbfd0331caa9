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
* Published HSEmotion weights are whole pickled timm models.  They are read without running
  the pickle (:mod:`facelab.legacy_pickle`: a restricted unpickler, inert stand-ins, weights
  copied into a fresh timm network), under any timm version.  :func:`import_hsemotion`
  converts a file; a model-zoo name (:mod:`facelab.zoo`, e.g. ``"enet_b0_8_va_mtl"``) works
  wherever a checkpoint path does: it is downloaded and converted once
  (:func:`zoo_checkpoint`), and later loads read the converted safetensors file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from facelab import labels as L
from facelab import zoo
from facelab.errors import CheckpointError, FacelabError, InvalidInputError, UnsafeCheckpointError
from facelab.labels import FACE_WORLD
from facelab.legacy_pickle import backbone_to_multitasknet, load_pickle_safely, state_dict_of, to_multitasknet
from facelab.models import MultiTaskNet
from facelab.paths import atomic_write_bytes, zoo_dir

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


# --- save / load --------------------------------------------------------------------
def checkpoint_config(model: MultiTaskNet, extra_config: dict | None = None) -> dict:
    """The JSON configuration stored with the weights."""
    from facelab import __version__

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
    if zoo.is_zoo_name(path):
        return zoo_checkpoint(path)
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


def trained_on_of(config: dict) -> str | None:
    """What a checkpoint's weights learned from (its config's ``trained_on``).  Checkpoints
    written before that field existed: :data:`facelab.models.FACE_WORLD` when they are a
    course recipe or the demo's tiny model (both are trained on drawn faces), else None."""
    if config.get("trained_on"):
        return str(config["trained_on"])
    extra = config.get("extra") or {}
    if "recipe" in extra or "demo_training" in extra:
        return FACE_WORLD
    return None


def load_checkpoint(path, *, device="cpu") -> MultiTaskNet:
    """Rebuild the network from a facelab checkpoint (``.safetensors``, or a ``.state.pt``
    training state) and load its weights.  Returns the model in eval mode.

    ``path`` may also be a model-zoo name (``facelab.zoo.list_models()``, e.g.
    ``"enet_b0_8_best_afew"``): downloaded on first use, converted once, then read from
    ``$FACELAB_HOME/zoo/NAME.safetensors``.

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
    model.trained_on = trained_on_of(config)
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


def as_model(model) -> tuple[MultiTaskNet, str]:
    """A model argument, resolved once at the edge: a :class:`MultiTaskNet`, a checkpoint path or
    a model-zoo name -> ``(MultiTaskNet, source name)``."""
    if isinstance(model, MultiTaskNet):
        return model, f"<{type(model).__name__} {model.backbone_name}>"
    if isinstance(model, (str, os.PathLike)):
        return load_checkpoint(model, device="cpu"), os.fspath(model)
    raise InvalidInputError(
        f"model must be a checkpoint path, a model-zoo name or a facelab MultiTaskNet, not {type(model).__name__}; "
        "convert other files with facelab.checkpoints.import_hsemotion"
    )


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
                "plain tensors from .pt files. If it is a published HSEmotion model, convert it with "
                "facelab.checkpoints.import_hsemotion(path, out), which reads its weights without running it"
            ) from exc
        raise CheckpointError(f"{path}: could not read the training state ({exc}); the file may be truncated") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a facelab training state (no {STATE_FORMAT!r} marker)")
    return state


# --- the paper's published networks (HSEmotion / EmotiEffLib) -----------------------------
def _guess_architecture(path: Path, class_names: dict) -> str | None:
    """timm name of a published file: EfficientNet B0 / B2 from its name; ``tf_`` when its
    modules show TensorFlow "same" padding (``Conv2dSame``), as the published files do."""
    name = path.name.lower()
    tf = "tf_" if any(c.rsplit(".", 1)[-1] == "Conv2dSame" for c in class_names.values()) else ""
    for tag, arch in (("enet_b0", "efficientnet_b0"), ("enet_b2", "efficientnet_b2"), ("rexnet_150", "rexnet_150")):
        if tag in name:
            return arch if arch.startswith("rexnet") else tf + arch
    return None


def _guess_image_size(architecture: str, path: Path) -> int:
    """The publisher's input size: 260 px for EfficientNet-B2 files, else 224 px."""
    return 260 if "b2" in f"{architecture} {path.name}".lower() else 224


def convert_published(path, architecture: str, *, head_rows: int | None = None, emotion_classes: int | None = None,
                      extra_outputs=(), image_size: int = 224, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD,
                      trained_on: str | None = None) -> MultiTaskNet:
    """A published ``.pt`` file -> :class:`MultiTaskNet`, without running its pickle.

    A whole pickled model with an emotion classifier (``emotion_classes`` 8 or 7, plus
    ``extra_outputs`` such as valence and arousal) becomes a network with those heads; a
    state dict without classifier (``emotion_classes=None``: the VGGFace2 identity backbones)
    becomes a headless backbone.  See :mod:`facelab.legacy_pickle`."""
    tree = load_pickle_safely(path)
    if emotion_classes:
        model = to_multitasknet(tree, architecture, labels=list(L.emotions(emotion_classes)),
                                extra_outputs=tuple(extra_outputs), image_size=image_size, mean=mean, std=std)
    else:
        model = backbone_to_multitasknet(tree, architecture, image_size=image_size, mean=mean, std=std)
    model.trained_on = trained_on
    return model


def import_hsemotion(path, out, *, trust_pickle: bool = False, backbone: str | None = None,
                     image_size: int | None = None, trained_on: str = "AffectNet") -> MultiTaskNet:
    """Convert a published HSEmotion / EmotiEffLib ``.pt`` file (a whole timm model pickled
    with ``torch.save(model)``, under any timm version) into a facelab checkpoint
    ``out.safetensors`` -- without running the pickle.

    The classifier's outputs decide the heads: 8 or 7 emotion logits (``facelab.labels``
    order), or 10 = 8 emotions + valence + arousal (the ``_va_mtl`` files).  The timm
    architecture is guessed from the file name and its padding layers (``backbone``
    overrides it); input 224 px for B0, 260 px for B2 (``image_size`` overrides).

    ``trust_pickle=True`` is only for pickles that really need their own code (not the
    published files): it unpickles with ``torch.load(weights_only=False)``, which runs
    whatever the file contains, and needs the timm version that saved it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no file at {path}")
    if trust_pickle:
        return _import_trusted_pickle(path, out, backbone=backbone, image_size=image_size, trained_on=trained_on)
    tensors, class_names = state_dict_of(load_pickle_safely(path))
    architecture = backbone or _guess_architecture(path, class_names)
    if architecture is None:
        raise CheckpointError(f"cannot tell which timm architecture {path} is; pass backbone='timm_model_name'")
    rows = next((int(t.shape[0]) for k, t in tensors.items()
                 if k in ("classifier.weight", "classifier.0.weight", "fc.weight", "head.fc.weight")), None)
    if rows not in (7, 8, 10):
        raise CheckpointError(f"{path}: the classifier has {rows} outputs; the published emotion networks have "
                              "8 or 7 (emotions) or 10 (8 emotions + valence + arousal)")
    model = convert_published(path, architecture, emotion_classes=min(rows, 8),
                              extra_outputs=("valence", "arousal") if rows == 10 else (),
                              image_size=int(image_size or _guess_image_size(architecture, path)), trained_on=trained_on)
    save_checkpoint(model, out, extra_config={"imported_from": path.name, "source": "HSEmotion (pickled timm model)"})
    return model


def _import_trusted_pickle(path: Path, out, *, backbone, image_size, trained_on) -> MultiTaskNet:
    try:
        original = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"could not unpickle {path} ({type(exc).__name__}: {exc}). Whole pickled models depend on the timm "
            "version that saved them: use import_hsemotion without trust_pickle, which needs no timm version"
        ) from exc
    if not isinstance(original, nn.Module):
        raise CheckpointError(f"{path} holds a {type(original).__name__}, not a whole model (torch.save(model))")
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)  # the weights alone, then the safe path
    stand_in = Path(tempfile.mkdtemp()) / path.name
    try:
        stand_in.write_bytes(buffer.getvalue())
        cfg = getattr(original, "pretrained_cfg", None) or getattr(original, "default_cfg", None) or {}
        architecture = backbone or cfg.get("architecture")
        if image_size is None and architecture and not _guess_architecture(path, {}) and cfg.get("input_size"):
            image_size = int(cfg["input_size"][-1])  # not a B0 / B2 file name: the model's own input size
        return import_hsemotion(stand_in, out, backbone=architecture, image_size=image_size, trained_on=trained_on)
    finally:
        stand_in.unlink()
        stand_in.parent.rmdir()


def zoo_checkpoint_path(name: str) -> Path:
    """Where the converted checkpoint of zoo model ``name`` lives: ``$FACELAB_HOME/zoo/NAME.safetensors``."""
    return zoo_dir() / f"{name}.safetensors"


def zoo_checkpoint(name: str, *, progress: bool = True) -> Path:
    """The facelab checkpoint of model-zoo entry ``name``: downloaded on first use
    (:func:`facelab.zoo.download`, sha256-checked), converted once without running its
    pickle, saved as ``$FACELAB_HOME/zoo/NAME.safetensors`` (+ ``.json``) with
    ``trained_on`` and ``source``; later calls return that file."""
    entry = zoo.get(name)
    if not entry.supported:
        raise CheckpointError(f"{name} cannot be loaded by facelab: {entry.reason}")
    if entry.architecture.startswith("facenet_pytorch"):
        raise CheckpointError(f"{name} is facenet-pytorch's InceptionResnetV1 (512-d embeddings), not a "
                              "facelab network; load it with facelab.checkpoints.load_facenet()")
    out = zoo_checkpoint_path(name)
    if out.is_file():
        try:
            if read_checkpoint_config(out).get("extra", {}).get("zoo") == name:
                return out
        except CheckpointError:
            pass  # a broken conversion: convert again
    raw = zoo.download(entry, progress=progress)
    emotion = [t for t in entry.tasks if t == "emotion"]
    model = convert_published(raw, entry.architecture, emotion_classes=len(entry.labels) if emotion else None,
                              extra_outputs=entry.extra_outputs, image_size=entry.image_size, mean=entry.mean,
                              std=entry.std, trained_on=entry.trained_on)
    save_checkpoint(model, out, extra_config={"zoo": name, "source": entry.source, "url": entry.url,
                                              "licence": entry.licence, "source_sha256": zoo.sha256_of(raw)})
    return out


def load_facenet(name: str = "facenet_vggface2", *, progress: bool = True):
    """facenet-pytorch's ``InceptionResnetV1`` with its VGGFace2 weights (512-d identity
    embeddings of 160 px crops), from the model zoo, read without running the file's pickle."""
    from facenet_pytorch import InceptionResnetV1

    entry = zoo.get(name)
    tensors, _ = state_dict_of(load_pickle_safely(zoo.download(entry, progress=progress)))
    model = InceptionResnetV1(pretrained=None, classify=False)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("logits.")]  # the training classifier
    if missing or unexpected:
        raise CheckpointError(f"{name}: the tensors do not fit InceptionResnetV1 (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.eval()


__all__ = [
    "checkpoint_path", "config_path", "training_state_path", "atomic_write_bytes",
    "checkpoint_config", "save_checkpoint", "read_checkpoint_config", "load_checkpoint",
    "model_from_config", "check_tensors_match", "trained_on_of", "as_model", "save_training_state", "load_training_state",
    "import_hsemotion", "convert_published", "zoo_checkpoint_path", "zoo_checkpoint", "load_facenet",
]
