"""The multi-task network of Fig. 1: one lightweight CNN backbone, several small heads.

::

    face crop (RGB) -> backbone (MobileNet / EfficientNet / RexNet, from timm) -> x
    x -> FC                        -> identity logits (one per training person)
    x -> FC                        -> gender logits (2: Male, Female)
    x -> FC                        -> race logits (5, UTKFace codes)
    x -> FC (hidden) + ReLU -> FC  -> age logits (100 classes: 1..100 years)
    x -> FC                        -> emotion logits (8 or 7, facelab.labels order)

x is the backbone's penultimate feature vector (1024 dims for ``mobilenetv1_100``,
1280 for ``efficientnet_b0``, 1920 for ``rexnet_150``).  Any timm model name works.
"""
from __future__ import annotations

import copy

import timm
import torch
from torch import nn

from facelab import labels as L
from facelab.errors import InvalidInputError, PretrainedWeightsUnavailable

#: The heads of Fig. 1, in a fixed order.
HEAD_NAMES = ("identity", "gender", "race", "age", "emotion")


# --- backbone -------------------------------------------------------------------
def _offline_message(name: str, exc: Exception) -> str:
    from huggingface_hub import constants

    hub_dir = torch.hub.get_dir()
    return (
        f"could not get the ImageNet weights of timm model {name!r} ({type(exc).__name__}: {exc}). "
        f"timm downloads them on first use and then reads them from its caches: the Hugging Face hub cache "
        f"{constants.HF_HUB_CACHE} (moved by HF_HOME or HF_HUB_CACHE) and the torch hub folder "
        f"{hub_dir}/checkpoints (moved by TORCH_HOME). To work offline, pre-fill the cache: on a machine with "
        f"internet run  python -c \"import timm; timm.create_model('{name}', pretrained=True)\"  and copy those "
        f"folders here (set HF_HUB_OFFLINE=1 to stop retrying the network); or download the weights file and pass "
        f"pretrained_cfg_overlay=dict(file='/path/to/model.safetensors'); or use pretrained=False."
    )


def resolve_device(device=None) -> torch.device:
    """``device`` as a torch.device; None means the GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def create_backbone(name: str = "mobilenetv1_100", pretrained: bool = False, **timm_kwargs) -> nn.Module:
    """A timm model without its classifier: ``backbone(images) -> x`` of shape (N, D).

    ``pretrained=True`` loads ImageNet weights through timm's normal download path (the
    Hugging Face hub cache).  Without network and without a cached copy this raises
    :class:`facelab.errors.PretrainedWeightsUnavailable`, whose message names the cache
    folders and how to pre-fill them.
    """
    hub_name = name.startswith(("hf-hub:", "hf_hub:", "local-dir:"))  # timm loads these from a hub/folder
    if not hub_name and not timm.is_model(name):
        similar = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        raise InvalidInputError(
            f"unknown backbone {name!r}: not a timm model name"
            + (f" (similar names: {', '.join(similar)})" if similar else "")
            + "; see timm.list_models()"
        )
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **timm_kwargs)
    except (OSError, RuntimeError) as exc:  # hub/url errors are OSErrors; missing weights a RuntimeError
        if not pretrained:
            raise
        if isinstance(exc, RuntimeError) and "No pretrained weights" in str(exc):
            raise PretrainedWeightsUnavailable(
                f"timm has no pretrained weights for {name!r}; use pretrained=False or another backbone"
            ) from exc
        raise PretrainedWeightsUnavailable(_offline_message(name, exc)) from exc


def feature_dim(backbone: nn.Module) -> int:
    """D, the length of the feature vector x a timm backbone (num_classes=0) returns."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


# --- heads ----------------------------------------------------------------------
def _default_labels(name: str, num_classes: int):
    if name == "gender":
        return list(L.GENDERS)
    if name == "race":
        return list(L.RACES)
    if name == "age":
        return [L.class_to_age(k) for k in range(num_classes)]
    if name == "emotion" and num_classes in (7, 8):
        return list(L.emotions(num_classes))
    return None


class MultiTaskNet(nn.Module):
    """Backbone + the heads of Fig. 1 (only the heads you ask for).

    >>> model = MultiTaskNet("mobilenetv1_100", emotion_classes=8, gender=True)
    >>> logits = model(images)          # {"gender": (N, 2), "emotion": (N, 8)}
    >>> x = model.features(images)      # (N, 1024)

    ``images`` are RGB, normalised with ImageNet mean/std (see ``model.preprocessing``).
    """

    def __init__(
        self,
        backbone_name: str = "mobilenetv1_100",
        *,
        num_identities: int | None = None,
        emotion_classes: int | None = None,
        gender: bool = False,
        race: bool = False,
        age: bool = False,
        age_hidden: int = 256,
        pretrained: bool = False,
        timm_kwargs: dict | None = None,
    ):
        super().__init__()
        self.backbone_name = backbone_name
        self.timm_kwargs = dict(timm_kwargs or {})
        self.backbone = create_backbone(backbone_name, pretrained=pretrained, **self.timm_kwargs)
        self.num_features = feature_dim(self.backbone)
        self.age_hidden = int(age_hidden)
        self.heads = nn.ModuleDict()
        #: Class names of every head (index k -> name), saved in checkpoints.
        self.label_names: dict[str, list | None] = {}
        #: How images must be prepared for this model (saved in checkpoints).
        self.preprocessing = {
            "image_size": int(self.backbone.pretrained_cfg.get("input_size", (3, 224, 224))[-1]),
            "mean": list(L.IMAGENET_MEAN),
            "std": list(L.IMAGENET_STD),
            "color": "RGB",
            "crop": "tight",
        }
        self.backbone_frozen = False
        #: What the weights learned from: ``labels.FACE_WORLD``, "AffectNet", "VGGFace2", ...
        #: (None: not recorded).  Saved in checkpoints; apps warn about face-world networks.
        self.trained_on: str | None = None
        if num_identities:
            self.add_head("identity", num_identities)
        if gender:
            self.add_head("gender")
        if race:
            self.add_head("race")
        if age:
            self.add_head("age")
        if emotion_classes:
            self.add_head("emotion", emotion_classes)

    # --- heads ----------------------------------------------------------------
    def add_head(self, name: str, num_classes: int | None = None, *, labels=None, replace: bool = False) -> nn.Module:
        """Add a new, freshly initialised head on x.

        gender -> 2 classes, race -> 5, age -> hidden FC + ReLU + FC over 100 ages, any other
        name (identity, emotion, ...) -> one FC layer with ``num_classes`` outputs.
        ``labels`` are the class names (defaults from facelab.labels where known).
        """
        fixed = {"gender": len(L.GENDERS), "race": len(L.RACES), "age": L.NUM_AGE_CLASSES}
        if name in fixed:
            if num_classes not in (None, fixed[name]):
                raise InvalidInputError(f"the {name} head has {fixed[name]} classes, not {num_classes}")
            num_classes = fixed[name]
        if not num_classes or int(num_classes) < 1:
            raise InvalidInputError(f"head {name!r} needs num_classes >= 1, got {num_classes}")
        num_classes = int(num_classes)
        if name in self.heads and not replace:
            raise InvalidInputError(f"the model already has a {name!r} head; pass replace=True to start a new one")
        if labels is not None and len(labels) != num_classes:
            raise InvalidInputError(f"head {name!r}: {len(labels)} label names for {num_classes} classes")
        if name == "age":  # Fig. 1: an extra hidden layer before the age classifier
            head = nn.Sequential(
                nn.Linear(self.num_features, self.age_hidden), nn.ReLU(), nn.Linear(self.age_hidden, num_classes)
            )
        else:
            head = nn.Linear(self.num_features, num_classes)
        reference = next(self.backbone.parameters(), None)
        if reference is not None:
            head = head.to(device=reference.device)
        self.heads[name] = head
        self.label_names[name] = list(labels) if labels is not None else _default_labels(name, num_classes)
        return head

    def reset_emotion_head(self, num_classes: int = 8, labels=None) -> nn.Module:
        """A new emotion head with C_e outputs (the start of the emotion stage)."""
        return self.add_head("emotion", num_classes, labels=labels, replace=True)

    def remove_head(self, name: str) -> None:
        del self.heads[name]
        self.label_names.pop(name, None)

    @property
    def head_sizes(self) -> dict[str, int]:
        """{head name: number of outputs}."""
        return {name: _out_features(head) for name, head in self.heads.items()}

    # --- forward --------------------------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """x: the penultimate feature vector, shape (N, D)."""
        return self.backbone(images)

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of every head from features x."""
        return {name: head(x) for name, head in self.heads.items()}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """{head name: logits} for normalised RGB images (N, 3, H, W)."""
        return self.forward_heads(self.features(images))

    # --- freezing -------------------------------------------------------------
    def freeze_backbone(self) -> "MultiTaskNet":
        """Train the heads only: backbone weights get no gradient, and its BatchNorm layers
        stay in eval mode (their running statistics do not move either)."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone_frozen = True
        self.backbone.eval()
        return self

    def unfreeze_backbone(self) -> "MultiTaskNet":
        """Train all weights again."""
        for p in self.backbone.parameters():
            p.requires_grad_(True)
        self.backbone_frozen = False
        self.backbone.train(self.training)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    def channels_last(self) -> "MultiTaskNet":
        """Store conv weights in channels_last memory format (faster on modern CPUs/GPUs)."""
        return self.to(memory_format=torch.channels_last)

    # --- description ----------------------------------------------------------
    @property
    def config(self) -> dict:
        """Everything needed to rebuild this network (weights aside), JSON-friendly."""
        return {
            "backbone": self.backbone_name,
            "timm_kwargs": copy.deepcopy(self.timm_kwargs),
            "num_features": self.num_features,
            "heads": self.head_sizes,
            "age_hidden": self.age_hidden,
            "labels": copy.deepcopy(self.label_names),
            "preprocessing": copy.deepcopy(self.preprocessing),
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_config(cls, config: dict) -> "MultiTaskNet":
        """Rebuild the network described by ``config`` (randomly initialised, no download)."""
        model = cls(
            config["backbone"],
            age_hidden=config.get("age_hidden", 256),
            pretrained=False,
            timm_kwargs=config.get("timm_kwargs") or {},
        )
        labels = config.get("labels") or {}
        for name, size in config.get("heads", {}).items():
            model.add_head(name, size, labels=labels.get(name))
        model.preprocessing.update(config.get("preprocessing") or {})
        model.trained_on = config.get("trained_on")
        return model

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, x_dim={self.num_features}, heads={self.head_sizes}"


def _out_features(head: nn.Module) -> int:
    last = head[-1] if isinstance(head, nn.Sequential) else head
    return int(last.out_features)


__all__ = ["HEAD_NAMES", "resolve_device", "create_backbone", "feature_dim", "MultiTaskNet"]
