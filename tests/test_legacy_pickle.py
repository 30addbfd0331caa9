"""legacy_pickle: the paper's whole pickled timm models, read without running their pickle.

The published files cannot be downloaded here, so the tests make files the way they were made:
``torch.save(model)`` of a timm EfficientNet whose classes live under module paths that the
installed timm does not have (as timm 0.4's did), in torch's zip and legacy formats.
"""
import copy
import functools
import importlib.util
import os
import pickle
import random
import shlex
import subprocess
import sys
import warnings

import pytest
import timm
import torch
from torch import nn

from facelab import labels as L
from facelab.errors import CheckpointError, UnsafeCheckpointError
from published_models import ARCH, OLD_PATHS, emotion_net, save_old_style

from facelab.legacy_pickle import (
    ALLOWED_GLOBALS, StandIn, backbone_to_multitasknet, find_head, load_pickle_safely, state_dict_of, to_multitasknet,
)

FORMATS = {"zip": True, "legacy": False}  # name -> torch.save's _use_new_zipfile_serialization
IMAGENET = dict(image_size=224, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD)

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def nets():
    return {"8": emotion_net(8, seed=0), "va": emotion_net(10, seed=1)}


@pytest.fixture(scope="module")
def files(nets, tmp_path_factory):
    """{(net name, format): path} of whole-model files under old timm paths."""
    folder = tmp_path_factory.mktemp("published")
    return {(name, fmt): save_old_style(net, folder / f"enet_b0_{name}_{fmt}.pt", zip_format)
            for name, net in nets.items() for fmt, zip_format in FORMATS.items()}


@pytest.fixture(scope="module")
def faces():
    """The astronaut's face (MTCNN box, tight crop, 224 px, ImageNet-normalised), flipped, shifted."""
    from skimage.data import astronaut

    from facelab.faces import crop_faces, detect_faces

    image = astronaut()
    found = detect_faces(image)[0]
    assert found, "MTCNN found no face in skimage's astronaut"
    crop = crop_faces(image, [found[0]], size=224) / 255.0
    x = (crop - torch.tensor(L.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(L.IMAGENET_STD).view(1, 3, 1, 1)
    return torch.cat([x, x.flip(3), x.roll((12, -9), dims=(2, 3))])


def run(model, x):
    with torch.inference_mode():
        return model(x)


# --- the test files are like the published ones ------------------------------------------------
def test_old_paths_do_not_exist_and_the_model_is_restored(nets, files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm.models.layers warns that it is deprecated
        assert all(importlib.util.find_spec(old) is None for old in OLD_PATHS.values())
    assert not set(OLD_PATHS.values()) & set(sys.modules)
    assert type(nets["8"].conv_stem).__module__ == "timm.layers.conv2d_same"
    assert run(nets["8"], torch.zeros(1, 3, 64, 64)).shape == (1, 8)


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_torch_load_fails(files, fmt):
    with pytest.raises(ModuleNotFoundError, match="timm.models"):
        torch.load(files["8", fmt], weights_only=False)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(files["8", fmt], weights_only=True)


# --- facelab reads them ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_emotion_logits_equal_the_original(nets, files, faces, fmt):
    model = to_multitasknet(files["8", fmt], ARCH, labels=L.EMOTIONS_8, **IMAGENET)
    assert not model.training and model.head_sizes == {"emotion": 8}
    assert model.label_names["emotion"] == list(L.EMOTIONS_8)
    assert model.preprocessing["image_size"] == 224 and model.preprocessing["crop"] == "tight"
    expected = run(nets["8"], faces)
    torch.testing.assert_close(run(model, faces)["emotion"], expected, atol=1e-4, rtol=0)
    assert expected.std() > 0.01  # a real network output, not a constant


@pytest.mark.parametrize("fmt", FORMATS)
def test_va_mtl_file_gives_emotion_valence_arousal(nets, files, faces, fmt):
    model = to_multitasknet(files["va", fmt], ARCH, labels=L.EMOTIONS_8, extra_outputs=("valence", "arousal"),
                            **IMAGENET)
    assert model.head_sizes == {"emotion": 8, "valence": 1, "arousal": 1}
    expected, got = run(nets["va"], faces), run(model, faces)
    torch.testing.assert_close(got["emotion"], expected[:, :8], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["valence"], expected[:, 8:9], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["arousal"], expected[:, 9:10], atol=1e-4, rtol=0)


def test_the_tree_holds_tensors_and_class_names_only(nets, files, faces):
    tree = load_pickle_safely(files["8", "zip"])
    assert isinstance(tree, StandIn) and type(tree).__module__ == "timm.models.gen_efficientnet"
    assert not hasattr(tree, "pretrained_cfg") and not hasattr(tree, "training") and not hasattr(tree, "__dict__")
    tensors, classes = state_dict_of(tree)
    original = nets["8"].state_dict()
    assert list(tensors) == list(original) and all(torch.equal(tensors[k], original[k]) for k in original)
    assert classes[""] == "timm.models.gen_efficientnet.EfficientNet"
    assert classes["conv_stem"] == "timm.models.layers.conv2d_same.Conv2dSame"
    assert classes["classifier.0"] == "torch.nn.modules.linear.Linear"
    prefix, weight, bias = find_head(tensors, classes)
    assert prefix == "classifier.0" and weight.shape == (8, 1280) and bias.shape == (8,)
    assert find_head(*state_dict_of(load_pickle_safely(files["va", "legacy"])))[0] == "classifier"
    model = to_multitasknet(tree, ARCH, labels=L.EMOTIONS_8, **IMAGENET)  # an already-loaded tree
    torch.testing.assert_close(run(model, faces[:1])["emotion"], run(nets["8"], faces[:1]), atol=1e-4, rtol=0)


def test_none_entries_and_non_persistent_buffers_are_skipped(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.BatchNorm1d(2), nn.Sequential(nn.Linear(2, 1)))
    model[1].register_buffer("scratch", torch.ones(2), persistent=False)
    torch.save(model, tmp_path / "small.pt")
    tensors, classes = state_dict_of(load_pickle_safely(tmp_path / "small.pt"))
    expected = model.state_dict()
    assert list(tensors) == list(expected) and all(torch.equal(tensors[k], expected[k]) for k in expected)
    assert classes == {"": "torch.nn.modules.container.Sequential", "0": "torch.nn.modules.linear.Linear",
                       "1": "torch.nn.modules.batchnorm.BatchNorm1d", "2": "torch.nn.modules.container.Sequential",
                       "2.0": "torch.nn.modules.linear.Linear"}


def test_allow_list_is_small_and_explicit():
    assert isinstance(ALLOWED_GLOBALS, frozenset) and len(ALLOWED_GLOBALS) <= 6
    assert all(module in ("torch._utils", "collections", "builtins") for module, _ in ALLOWED_GLOBALS)


# --- mismatches ------------------------------------------------------------------------------------
def test_padding_variant_mismatch_is_named(files, tmp_path):
    with pytest.raises(CheckpointError, match="padding variant does not match.*efficientnet_b0"):
        to_multitasknet(files["8", "zip"], "efficientnet_b0", labels=L.EMOTIONS_8, **IMAGENET)
    torch.manual_seed(0)
    plain = timm.create_model("efficientnet_b0", num_classes=8)  # PyTorch padding, no Conv2dSame
    torch.save(plain, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="padding variant does not match"):
        to_multitasknet(tmp_path / "plain.pt", ARCH, labels=L.EMOTIONS_8, **IMAGENET)


def test_wrong_head_size(files):
    with pytest.raises(CheckpointError, match="8 outputs, but 7 labels"):
        to_multitasknet(files["8", "zip"], ARCH, labels=L.EMOTIONS_7, **IMAGENET)
    with pytest.raises(CheckpointError, match="10 outputs, but 8 labels"):
        to_multitasknet(files["va", "zip"], ARCH, labels=L.EMOTIONS_8, **IMAGENET)


def test_backbone_keys_and_shapes_must_match(nets):
    tensors = {k: v for k, v in nets["8"].state_dict().items() if not k.startswith("classifier.")}
    del tensors["conv_head.weight"]
    tensors["bn2.bias"] = torch.zeros(7)
    tensors["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 missing .*conv_head.weight.*1 unexpected.*1 with the wrong shape"):
        backbone_to_multitasknet(tensors, ARCH, **IMAGENET)


# --- identity backbones: plain state dicts ----------------------------------------------------------
def test_identity_state_dict(nets, faces, tmp_path):
    backbone = copy.deepcopy(nets["8"])
    backbone.classifier = nn.Identity()
    torch.save(backbone.state_dict(), tmp_path / "state_vggface2_enet0_new.pt")
    model = backbone_to_multitasknet(tmp_path / "state_vggface2_enet0_new.pt", ARCH, **IMAGENET)
    assert model.head_sizes == {} and not model.training
    with torch.inference_mode():
        torch.testing.assert_close(model.features(faces), backbone(faces), atol=1e-4, rtol=0)


def test_backbone_of_a_whole_model_drops_its_head(nets, files, faces):
    model = backbone_to_multitasknet(files["8", "legacy"], ARCH, **IMAGENET)
    with torch.inference_mode():
        expected = nets["8"].forward_head(nets["8"].forward_features(faces), pre_logits=True)
        torch.testing.assert_close(model.features(faces), expected, atol=1e-4, rtol=0)


# --- malicious files -------------------------------------------------------------------------------
class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


PAYLOADS = {
    "os.system": lambda target: Payload(os.system, f"touch {shlex.quote(str(target))}"),
    "open": lambda target: Payload(open, str(target), "w"),
    "Popen": lambda target: Payload(subprocess.Popen, ["touch", str(target)]),
}


def write(obj, path, container):
    if container == "raw pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=container == "zip")
    return path


@pytest.mark.parametrize("container", ["zip", "legacy", "raw pickle"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_malicious_pickles_are_refused_before_running(tmp_path, payload, container):
    target = tmp_path / "pwned"
    path = write(PAYLOADS[payload](target), tmp_path / "evil.pt", container)
    with pytest.raises(UnsafeCheckpointError, match=rf"evil\.pt.*calls \S*{payload.split('.')[-1]}\("):
        load_pickle_safely(path)
    with pytest.raises(UnsafeCheckpointError):
        to_multitasknet(path, ARCH, labels=L.EMOTIONS_8, **IMAGENET)
    assert not target.exists()


def test_the_payload_is_real(tmp_path):
    """What plain torch.load(weights_only=False) does with the same file."""
    target = tmp_path / "pwned"
    torch.load(write(PAYLOADS["os.system"](target), tmp_path / "evil.pt", "zip"), weights_only=False)
    assert target.exists()


def test_payload_inside_a_valid_model_is_refused(nets, tmp_path):
    target = tmp_path / "pwned"
    se = nets["8"].blocks[3][0].se
    se.notes = PAYLOADS["os.system"](target)
    try:
        save_old_style(nets["8"], tmp_path / "trojan.pt")
    finally:
        del se.notes
    with pytest.raises(UnsafeCheckpointError, match="trojan.pt.*system"):
        load_pickle_safely(tmp_path / "trojan.pt")
    assert not target.exists()


class TouchesOnSetstate:
    """A real class whose __setstate__ would write a file: never reached, the class is a stand-in."""

    def __setstate__(self, state):  # pragma: no cover - must not run
        open(state["target"], "w").close()


@pytest.mark.filterwarnings("ignore:`torch.jit.s:FutureWarning")
def test_other_code_routes_are_closed(tmp_path):
    target = tmp_path / "pwned"
    obj = TouchesOnSetstate()
    obj.target = str(target)
    tree = load_pickle_safely(write(obj, tmp_path / "setstate.pt", "zip"))  # NEWOBJ + BUILD of a stand-in
    assert isinstance(tree, StandIn) and not target.exists() and not hasattr(tree, "target")
    with pytest.raises(UnsafeCheckpointError, match="functools.partial"):
        load_pickle_safely(write({"f": functools.partial(print, "hi")}, tmp_path / "partial.pt", "zip"))
    (tmp_path / "proto1.pt").write_bytes(pickle.dumps(obj, protocol=1))  # old protocols call copyreg
    with pytest.raises(UnsafeCheckpointError, match="copyreg._reconstructor"):
        load_pickle_safely(tmp_path / "proto1.pt")
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), tmp_path / "scripted.pt")
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        load_pickle_safely(tmp_path / "scripted.pt")


class LooksLikeAModule:
    """Pickles like an nn.Module (NEWOBJ + BUILD of its __dict__) but holds whatever a test puts in."""


def test_odd_trees_are_refused(tmp_path):
    odd = LooksLikeAModule()
    odd._parameters, odd._buffers, odd._modules = {"weight": "not a tensor"}, {}, {}
    with pytest.raises(CheckpointError, match="weight: expected a tensor"):
        to_multitasknet(write(odd, tmp_path / "odd.pt", "zip"), ARCH, labels=L.EMOTIONS_8, **IMAGENET)
    odd._parameters, odd._modules = {}, {"me": odd}
    with pytest.raises(CheckpointError, match="contains itself"):
        state_dict_of(load_pickle_safely(write(odd, tmp_path / "cycle.pt", "zip")))
    with pytest.raises(CheckpointError, match="not a readable"):  # a raw pickle is not a torch file
        load_pickle_safely(write({"weight": [1.0, 2.0]}, tmp_path / "raw.pt", "raw pickle"))


# --- damaged files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated zip", "truncated legacy", "random bytes", "empty", "missing"])
def test_damaged_files_raise_checkpoint_error(files, tmp_path, damage):
    path = tmp_path / "damaged.pt"
    if damage.startswith("truncated"):
        data = files["8", damage.split()[1]].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "random bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="damaged.pt"):
        load_pickle_safely(path)
