"""Backbone factory and the multi-task network of Fig. 1."""
import pytest
import torch
from torch import nn

from facelab import labels as L
from facelab.errors import InvalidInputError, PretrainedWeightsUnavailable
from facelab.models import MultiTaskNet, create_backbone
from conftest import TINY, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name, dim", [("mobilenetv1_100", 1024), ("efficientnet_b0", 1280), ("rexnet_150", 1920)])
def test_paper_backbones_feature_sizes(name, dim):
    backbone = create_backbone(name)
    model = MultiTaskNet(name, emotion_classes=8)
    assert model.num_features == dim
    assert model.heads["emotion"].in_features == dim
    if name == "mobilenetv1_100":
        x = backbone(torch.zeros(2, 3, 32, 32))
        assert x.shape == (2, 1024)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="not a timm model"):
        create_backbone("mobilenetv9_999")


def test_pretrained_offline_names_the_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    # no network here; offline mode makes the hub fail at once instead of retrying
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        create_backbone(TINY, pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "hf-cache") in message
    assert torch.hub.get_dir() in message
    assert "pretrained=True" in message and "HF_HUB_OFFLINE" in message


def test_heads_of_figure_1():
    model = tiny_model(num_identities=7, emotion_classes=8, gender=True, race=True, age=True, age_hidden=16)
    out = model(torch.randn(3, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "identity": (3, 7), "gender": (3, 2), "race": (3, 5), "age": (3, 100), "emotion": (3, 8)}
    age = model.heads["age"]  # hidden FC + ReLU, then FC over 100 age classes
    assert isinstance(age, nn.Sequential) and isinstance(age[1], nn.ReLU)
    assert (age[0].in_features, age[0].out_features, age[2].out_features) == (256, 16, 100)
    assert isinstance(model.heads["gender"], nn.Linear)
    assert model.features(torch.randn(3, 3, 32, 32)).shape == (3, 256)
    assert model.label_names["emotion"] == list(L.EMOTIONS_8)
    assert model.label_names["race"] == list(L.RACES)
    assert model.label_names["age"][:2] == [1, 2]


def test_only_requested_heads_and_reset_emotion_head():
    model = tiny_model(gender=True)
    assert list(model.heads) == ["gender"]
    model.reset_emotion_head(7)
    assert model.head_sizes == {"gender": 2, "emotion": 7}
    assert model.label_names["emotion"] == list(L.EMOTIONS_7)
    with pytest.raises(InvalidInputError, match="already has"):
        model.add_head("gender")
    with pytest.raises(InvalidInputError, match="2 classes"):
        model.add_head("gender", 3, replace=True)
    with pytest.raises(InvalidInputError, match="label names"):
        model.add_head("identity", 3, labels=["a", "b"])


def test_frozen_backbone_does_not_change_after_a_step():
    model = tiny_model(emotion_classes=8).freeze_backbone()
    model.train()
    assert not model.backbone.training  # BatchNorm stays in eval mode: its statistics do not move
    assert all(not p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32))["emotion"], torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"heads.emotion.weight", "heads.emotion.bias"}
    model.unfreeze_backbone()
    assert all(p.requires_grad for p in model.backbone.parameters()) and model.backbone.training


def test_config_rebuilds_the_same_network():
    model = tiny_model(num_identities=4, age=True)
    model.add_head("emotion", 8)
    model.preprocessing.update(image_size=48, crop="center")
    clone = MultiTaskNet.from_config(model.config)
    assert clone.config == model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_channels_last_gives_the_same_outputs():
    model = tiny_model(emotion_classes=8)
    images = torch.randn(2, 3, 32, 32)
    expected = model(images)["emotion"]
    model.channels_last()
    got = model(images.contiguous(memory_format=torch.channels_last))["emotion"]
    assert torch.allclose(expected, got, atol=1e-5)
