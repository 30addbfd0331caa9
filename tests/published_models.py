"""Files made the way the paper's published networks were made (the real ones cannot be
downloaded here): ``torch.save(model)`` of a timm EfficientNet whose classes live under module
paths that the installed timm does not have, as timm 0.4's did.  Used by the legacy-pickle,
model-zoo, CLI and demo tests."""
import sys
import types
import warnings
from contextlib import contextmanager

import timm
import torch
from torch import nn


ARCH = "tf_efficientnet_b0"
#: Where the installed timm keeps a class -> a timm-0.4-style path that it does not have.
OLD_PATHS = {
    "timm.models.efficientnet": "timm.models.gen_efficientnet",  # timm's first name for the file
    "timm.models._efficientnet_blocks": "timm.models.efficientnet_blocks",
    "timm.layers.conv2d_same": "timm.models.layers.conv2d_same",
    "timm.layers.norm_act": "timm.models.layers.norm_act",
    "timm.layers.adaptive_avgmax_pool": "timm.models.layers.adaptive_avgmax_pool",
}


def emotion_net(outputs: int, seed: int) -> nn.Module:
    """tf_efficientnet_b0 with the publisher's head: Sequential(Linear) for 8 emotions, a bare
    Linear for the 10-output _va_mtl files.  BatchNorm statistics are random, so buffers count."""
    torch.manual_seed(seed)
    model = timm.create_model(ARCH, num_classes=0)
    model.classifier = nn.Sequential(nn.Linear(1280, 8)) if outputs == 8 else nn.Linear(1280, outputs)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@contextmanager
def old_timm_paths(model: nn.Module):
    """While active, every timm module of ``model`` is an instance of a subclass of its class with the
    same name but an old module path, found through a fake module in sys.modules (pickle looks it up)."""
    fakes, originals = {}, []
    for module in model.modules():
        cls = type(module)
        if cls.__module__ not in OLD_PATHS:
            assert cls.__module__.startswith("torch.nn."), cls  # every timm class must be renamed
            continue
        old = OLD_PATHS[cls.__module__]
        fake = fakes.setdefault(old, types.ModuleType(old))
        if not hasattr(fake, cls.__name__):
            setattr(fake, cls.__name__, type(cls.__name__, (cls,), {"__module__": old, "__qualname__": cls.__name__}))
        originals.append((module, cls))
        module.__class__ = getattr(fake, cls.__name__)
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for module, cls in originals:
            module.__class__ = cls
        for name in fakes:
            del sys.modules[name]


def save_old_style(model, path, zip_format=True):
    with old_timm_paths(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy format cannot find the fake classes' source
        torch.save(model, path, _use_new_zipfile_serialization=zip_format)
    return path
