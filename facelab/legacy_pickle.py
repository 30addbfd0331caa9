"""Reading the paper's published networks (whole pickled timm models) without running them.

Why this module exists
----------------------
The published emotion networks (``enet_b0_8_best_vgaf.pt`` ...) were saved with
``torch.save(model)``: the *whole* module is pickled, with every class named by the module
path of the timm version of the day (timm 0.4: ``timm.models.layers.conv2d_same.Conv2dSame``).
Users of these files hit three walls:

* plain ``torch.load`` imports those paths: ``ModuleNotFoundError`` under current timm;
* where the import works, an object built by old timm runs the *new* timm's ``forward``
  (``'SqueezeExcite' object has no attribute 'gate'``);
* ``weights_only=True`` (torch's default since 2.6) refuses whole models, and
  ``weights_only=False`` runs whatever the file contains: a pickle may call any function
  (``os.system``, ``subprocess.Popen`` ...).

We only need the tensors.  So we unpickle with a *restricted* unpickler and pour the tensors
into a freshly built network (:func:`to_multitasknet`), whose code is the installed timm's.

What the unpickler allows
-------------------------
Pickle names every class and function it needs as a "global" (module, name); our
``find_class`` decides what each name becomes.  Only the pairs in :data:`ALLOWED_GLOBALS`
resolve to the real objects: torch's tensor rebuild functions and two pure data containers.
(Storage names such as ``torch.FloatStorage`` never reach us: torch's own loader turns them
into a dtype holder first, and torch's own ``persistent_load`` reads the tensor data.)

Every other name becomes a **stand-in**: an empty class with the same module and name that is
never imported (importing a module can run code).  Pickle rebuilds an ordinary object with
``cls.__new__(cls)`` and then hands it its state (BUILD); a stand-in's ``__new__`` gives an
inert object and its ``__setstate__`` keeps only ``_parameters``, ``_buffers``, ``_modules``
and ``_non_persistent_buffers_set`` - the tensors and the module tree - and drops the rest.
*Calling* a stand-in (pickle's REDUCE, how ``os.system("...")`` would be run) raises
:class:`~facelab.errors.UnsafeCheckpointError` before anything happens.
"""
from __future__ import annotations

import _compat_pickle
import importlib
import io
import os
import pickle
import reprlib
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from facelab.errors import CheckpointError, UnsafeCheckpointError
from facelab.models import MultiTaskNet

#: The only globals resolved for real: all that ``torch.save(model)`` of a timm model needs
#: (found by disassembling zip and legacy files; torch 1.x files use the same names).
ALLOWED_GLOBALS = frozenset({
    ("torch._utils", "_rebuild_tensor_v2"),  # every tensor: (storage, offset, size, stride, ...)
    ("torch._utils", "_rebuild_parameter"),  # every nn.Parameter: Parameter(tensor, requires_grad)
    # A Parameter that carries Python attributes (a training script's tag); they are set with setattr.
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"),  # nn.Module's _parameters/_buffers/_modules/hook dicts
    # nn.Module._non_persistent_buffers_set is a set; pickle protocol 2 (torch's default) has no
    # set opcode, so it stores set(list) as a call.  set() only builds a container from data.
    ("builtins", "set"),
})

#: The parts of a stand-in's state that are kept: the tensors and the module tree.
KEPT_STATE = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")

#: Where known classifiers sit: (prefix of the final Linear, root of the whole head).
HEAD_LAYOUTS = (("classifier", "classifier"), ("classifier.0", "classifier"), ("fc", "fc"), ("head.fc", "head.fc"))

_MAX_MODULES = 100_000  # more than any real network; a file whose modules share children can't blow up the walk


# --- stand-ins ------------------------------------------------------------------------
class _StandInType(type):
    """The metaclass of stand-ins: calling a stand-in class is refused."""

    def __call__(cls, *args, **kwargs):
        short = reprlib.Repr()
        short.maxstring = short.maxother = 60
        shown = ", ".join(short.repr(a) for a in args[:4]) + (", ..." if len(args) > 4 else "")
        raise UnsafeCheckpointError(
            f"the pickle calls {cls.__module__}.{cls.__qualname__}({shown}); a whole-model file only needs "
            "torch's tensor functions, so this file is refused (nothing was run)"
        )

    def __repr__(cls):
        return f"<stand-in {cls.__module__}.{cls.__qualname__}>"


class StandIn(metaclass=_StandInType):
    """An inert replacement for a class named in a pickle: module tree and tensors only."""

    __slots__ = KEPT_STATE  # no __dict__: nothing else can be stored on a stand-in
    dump_patches = False  # read by torch's legacy loader when a class's source changed: write no .patch file

    def __new__(cls, *args, **kwargs):  # pickle's NEWOBJ: cls.__new__(cls, *args)
        self = object.__new__(cls)
        for name in KEPT_STATE:
            object.__setattr__(self, name, set() if name == "_non_persistent_buffers_set" else {})
        return self

    def __setstate__(self, state):  # pickle's BUILD: our code, it calls nothing from the file
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__ state, __slots__ state)
            state = state[0]
        if isinstance(state, dict):
            for name in KEPT_STATE:
                if name in state:
                    object.__setattr__(self, name, state[name])

    def __repr__(self):
        return f"<stand-in for {type(self).__module__}.{type(self).__qualname__}>"


def _class_name(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle.Unpickler whose ``find_class`` never imports: see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module, name):
        # Protocol 2 (torch's default) writes Python 2 names: __builtin__.set, commands.Popen ...
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[module, name]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED_GLOBALS:
            return getattr(importlib.import_module(module), name)  # torch, collections, builtins
        key = (module, name)
        if key not in self._stand_ins:
            self._stand_ins[key] = _StandInType(name, (StandIn,), {
                "__module__": module, "__qualname__": name, "__slots__": ()})
        return self._stand_ins[key]


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


#: What torch.load needs of a ``pickle_module``: a name, ``Unpickler`` and ``load`` (the legacy
#: format reads its magic number, version and storage keys with ``load``: restricted too).
RESTRICTED_PICKLE = SimpleNamespace(__name__=f"{__name__}.RESTRICTED_PICKLE", Unpickler=RestrictedUnpickler,
                                    load=_restricted_load, UnpicklingError=pickle.UnpicklingError)


def load_pickle_safely(path):
    """Read a ``torch.save`` file (zip or legacy format) without running its pickle.

    Returns a tree of :class:`StandIn` objects (a whole pickled model) or plain data (a state
    dict).  Raises :class:`UnsafeCheckpointError` if the pickle calls anything not allowed (or
    is a TorchScript archive, which torch.load would hand to ``torch.jit.load``), and
    :class:`CheckpointError` for missing, truncated or non-torch files.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if data[:4] == b"PK\x03\x04":  # torch's zip format
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{path} is a damaged zip archive ({exc}); it may be truncated") from exc
        if any(name.split("/")[-1] == "constants.pkl" for name in names):
            raise UnsafeCheckpointError(f"{path} is a TorchScript archive (code, not just weights); refused")
    with warnings.catch_warnings():  # the legacy format compares saved class sources with ours: noise
        warnings.simplefilter("ignore", torch.serialization.SourceChangeWarning)
        warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
        try:
            # A BytesIO (no fileno) also keeps torch away from its pre-2017 tar reader.
            return torch.load(io.BytesIO(data), map_location="cpu", pickle_module=RESTRICTED_PICKLE,
                              weights_only=False, mmap=False)
        except UnsafeCheckpointError as exc:
            raise UnsafeCheckpointError(f"{path}: {exc}") from None
        except Exception as exc:
            raise CheckpointError(
                f"{path} is not a readable torch.save file ({type(exc).__name__}: {exc}); it may be truncated"
            ) from exc


# --- from the tree to tensors -------------------------------------------------------------
def state_dict_of(tree):
    """``(tensors, class_names)`` of a loaded file.

    tensors: ``OrderedDict`` {state_dict key: tensor}, as ``model.state_dict()`` would give
    (None entries and non-persistent buffers skipped).  class_names: {module prefix ("" for
    the root): "module.ClassName"}.  A plain state dict (dict of tensors) passes through, with
    no class names; a real ``nn.Module`` gives its own ``state_dict()``.
    """
    if isinstance(tree, nn.Module):
        return OrderedDict(tree.state_dict()), {k: _class_name(m) for k, m in tree.named_modules()}
    if isinstance(tree, dict):
        bad = [k for k, v in tree.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
        if bad:
            raise CheckpointError(f"a state dict must map names to tensors; {len(bad)} entries do not: {bad[:3]}")
        return OrderedDict((k, v.detach()) for k, v in tree.items()), {}
    if not isinstance(tree, StandIn):
        raise CheckpointError(f"expected a pickled model or a state dict, found a {type(tree).__name__}")
    tensors, classes = OrderedDict(), {}
    try:
        _walk(tree, "", tensors, classes, active=set())
    except RecursionError:
        raise CheckpointError("the module tree is nested deeper than any real network") from None
    return tensors, classes


def _walk(module, prefix, tensors, classes, active) -> None:
    if id(module) in active:
        raise CheckpointError(f"the module tree contains itself at {prefix!r}")
    if len(classes) >= _MAX_MODULES:
        raise CheckpointError(f"the module tree has more than {_MAX_MODULES} modules")
    classes[prefix] = _class_name(module)
    dotted = prefix + "." if prefix else ""
    skipped = module._non_persistent_buffers_set
    if not isinstance(skipped, set):
        raise CheckpointError(f"{prefix or 'the root'}: _non_persistent_buffers_set is a {type(skipped).__name__}")
    for kind in ("_parameters", "_buffers"):
        entries = getattr(module, kind)
        if not isinstance(entries, dict):
            raise CheckpointError(f"{prefix or 'the root'}: {kind} is a {type(entries).__name__}, not a dict")
        for name, value in entries.items():
            if value is None or (kind == "_buffers" and name in skipped):
                continue
            if not (isinstance(name, str) and isinstance(value, torch.Tensor)):
                raise CheckpointError(f"{dotted}{name}: expected a tensor, found a {type(value).__name__}")
            tensors[dotted + name] = value.detach()
    if not isinstance(module._modules, dict):
        raise CheckpointError(f"{prefix or 'the root'}: _modules is a {type(module._modules).__name__}")
    active.add(id(module))
    for name, child in module._modules.items():
        if child is None:
            continue
        if not (isinstance(name, str) and isinstance(child, StandIn)):
            raise CheckpointError(f"{dotted}{name}: expected a module, found a {type(child).__name__}")
        _walk(child, dotted + name, tensors, classes, active)
    active.discard(id(module))


# --- into a fresh network ---------------------------------------------------------------------
def _head_prefix(tensors, class_names):
    for prefix, root in HEAD_LAYOUTS:
        if prefix + ".weight" not in tensors:
            continue
        ours = {prefix + ".weight", prefix + ".bias"}
        others = [k for k in tensors if k.startswith(root + ".") and k not in ours]
        kind = class_names.get(prefix, "Linear")
        if others or not kind.endswith("Linear"):
            raise CheckpointError(f"the head at {root!r} is not a single Linear layer ({kind}; also {others[:3]})")
        return prefix
    return None


def find_head(tensors, class_names=None):
    """``(prefix, weight, bias)`` of the classifier: ``classifier`` (Linear), ``classifier.0``
    (``Sequential(Linear)``), ``fc`` or ``head.fc``.  A head without bias gets zeros."""
    prefix = _head_prefix(tensors, class_names or {})
    if prefix is None:
        looked = ", ".join(p + ".weight" for p, _ in HEAD_LAYOUTS)
        raise CheckpointError(f"no classifier found (looked for {looked})")
    weight, bias = tensors[prefix + ".weight"], tensors.get(prefix + ".bias")
    if weight.ndim == 2 and bias is None:
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype)
    if weight.ndim != 2 or bias is None or bias.shape != weight.shape[:1]:
        raise CheckpointError(f"{prefix}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} are not a Linear's")
    return prefix, weight, bias


def _tensors_of(source):
    if isinstance(source, (str, os.PathLike)):
        name, tree = str(source), load_pickle_safely(source)
    else:
        name, tree = f"the given {type(source).__name__}", source
    try:
        return (name, *state_dict_of(tree))
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: {exc}") from exc


def _network(architecture, tensors, class_names, name, image_size, mean, std) -> MultiTaskNet:
    """A fresh MultiTaskNet(architecture) whose backbone holds ``tensors`` (strict keys and shapes)."""
    model = MultiTaskNet(architecture, pretrained=False)
    if class_names:  # a whole pickled model names its layers: TF "same" padding is Conv2dSame
        file_same = any(c.rsplit(".", 1)[-1].startswith("Conv2dSame") for c in class_names.values())
        timm_same = any(type(m).__name__.startswith("Conv2dSame") for m in model.backbone.modules())
        if file_same != timm_same:
            raise CheckpointError(
                f"{name}: the padding variant does not match: the file's network "
                f"{'has' if file_same else 'has no'} Conv2dSame layers (TensorFlow 'same' padding) but timm's "
                f"{architecture!r} {'has' if timm_same else 'has none'}; use the "
                f"{'tf_' if file_same else 'non-tf_'} variant of the architecture (e.g. 'tf_efficientnet_b0')"
            )
    expected = {k: tuple(v.shape) for k, v in model.backbone.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = {
        "missing": [k for k in expected if k not in found],
        "unexpected": [k for k in found if k not in expected],
        "with the wrong shape": [f"{k}: {found[k]} in the file, {expected[k]} in timm"
                                 for k in expected if k in found and found[k] != expected[k]],
    }
    if any(problems.values()):
        detail = "; ".join(f"{len(keys)} {what} (e.g. {keys[:3]})" for what, keys in problems.items() if keys)
        raise CheckpointError(f"{name}: its tensors do not fit timm's {architecture!r}: {detail}")
    model.backbone.load_state_dict(tensors, strict=True)
    model.preprocessing.update(image_size=int(image_size), mean=[float(v) for v in mean],
                               std=[float(v) for v in std], crop="tight")
    return model


def to_multitasknet(source, architecture, *, labels, extra_outputs=(), image_size, mean, std) -> MultiTaskNet:
    """A published whole-model file (path, or a tree / state dict already loaded) as a MultiTaskNet.

    The backbone gets every tensor but the classifier's (strict keys and shapes).  The
    classifier's first ``len(labels)`` rows become the ``emotion`` head; each name in
    ``extra_outputs`` takes one more row as a 1-output head (``_va_mtl`` files:
    ``extra_outputs=("valence", "arousal")``).  Returns the model in eval mode.
    """
    name, tensors, class_names = _tensors_of(source)
    prefix, weight, bias = find_head(tensors, class_names)
    labels, extra_outputs = list(labels), tuple(extra_outputs)
    if weight.shape[0] != len(labels) + len(extra_outputs):
        raise CheckpointError(
            f"{name}: the classifier {prefix!r} has {weight.shape[0]} outputs, but {len(labels)} labels "
            f"+ {len(extra_outputs)} extra outputs {extra_outputs} were asked for"
        )
    backbone = OrderedDict((k, v) for k, v in tensors.items() if k not in (prefix + ".weight", prefix + ".bias"))
    model = _network(architecture, backbone, class_names, name, image_size, mean, std)
    if weight.shape[1] != model.num_features:
        raise CheckpointError(f"{name}: the classifier reads {weight.shape[1]} features, "
                              f"timm's {architecture!r} gives {model.num_features}")
    heads = [("emotion", 0, len(labels), labels)]
    heads += [(extra, len(labels) + i, len(labels) + i + 1, None) for i, extra in enumerate(extra_outputs)]
    for head_name, start, stop, head_labels in heads:
        head = model.add_head(head_name, stop - start, labels=head_labels)
        with torch.no_grad():
            head.weight.copy_(weight[start:stop])
            head.bias.copy_(bias[start:stop])
    return model.eval()


def backbone_to_multitasknet(source, architecture, *, image_size, mean, std) -> MultiTaskNet:
    """A backbone-only file (the identity state dicts ``state_vggface2_*.pt``) as a MultiTaskNet
    with no heads.  If the file has a classifier (one of :data:`HEAD_LAYOUTS`), it is dropped:
    only the backbone is kept.  Keys and shapes must match timm's ``architecture`` exactly."""
    name, tensors, class_names = _tensors_of(source)
    prefix = _head_prefix(tensors, class_names)
    if prefix is not None:
        tensors = OrderedDict((k, v) for k, v in tensors.items() if k not in (prefix + ".weight", prefix + ".bias"))
    return _network(architecture, tensors, class_names, name, image_size, mean, std).eval()


__all__ = ["ALLOWED_GLOBALS", "KEPT_STATE", "HEAD_LAYOUTS", "StandIn", "RestrictedUnpickler", "RESTRICTED_PICKLE",
           "load_pickle_safely", "state_dict_of", "find_head", "to_multitasknet", "backbone_to_multitasknet"]
