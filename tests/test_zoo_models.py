"""The model zoo end to end: a zoo name works wherever a checkpoint path does.

The published files cannot be downloaded here, so a FACELAB_ZOO_MIRROR folder holds files made
the way they were made (tests/published_models.py): whole tf_efficientnet_b0 models pickled under
timm-0.4 module paths, a state-dict identity backbone, and an InceptionResnetV1 state dict.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from published_models import emotion_net, save_old_style

from facelab import labels as L
from facelab import zoo
from facelab.checkpoints import load_checkpoint, load_facenet, read_checkpoint_config, zoo_checkpoint_path
from facelab.apps.cli import main
from facelab.errors import CheckpointError, ModelDownloadError


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def nets():
    identity = emotion_net(8, seed=2)
    identity.classifier = nn.Identity()  # how the identity backbones were saved: a state dict, no classifier
    return {"enet_b0_8_va_mtl": emotion_net(10, seed=1), "enet_b0_8_best_afew": emotion_net(8, seed=0),
            "state_vggface2_enet0_new": identity}


@pytest.fixture(scope="module")
def mirror(nets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror")
    for name in ("enet_b0_8_va_mtl", "enet_b0_8_best_afew"):
        save_old_style(nets[name], folder / zoo.get(name).file)
    torch.save(nets["state_vggface2_enet0_new"].state_dict(), folder / zoo.get("state_vggface2_enet0_new").file)
    return folder


@pytest.fixture
def use_mirror(mirror, monkeypatch):
    monkeypatch.setenv(zoo.MIRROR_ENV, str(mirror))
    return mirror


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    """A real photo with one face, as a file, and its tight 224 px crop normalised as the publisher does."""
    from skimage.data import astronaut as photo

    from facelab.faces import crop_faces, detect_faces

    image = photo()
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(image).save(path)
    face = detect_faces(image)[0][0]
    crop = crop_faces(image, [face], size=224) / 255.0
    x = (crop - torch.tensor(L.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(L.IMAGENET_STD).view(1, 3, 1, 1)
    return path, x


def test_a_zoo_name_loads_like_a_checkpoint_and_is_converted_once(nets, use_mirror, astronaut):
    _, x = astronaut
    model = load_checkpoint("enet_b0_8_va_mtl")
    assert model.backbone_name == "tf_efficientnet_b0" and model.trained_on == "AffectNet"
    assert model.head_sizes == {"emotion": 8, "valence": 1, "arousal": 1}
    assert model.label_names["emotion"] == list(L.EMOTIONS_8) and model.preprocessing["image_size"] == 224
    with torch.inference_mode():
        expected, got = nets["enet_b0_8_va_mtl"](x), model(x)
    assert torch.allclose(got["emotion"], expected[:, :8], atol=1e-4, rtol=0)
    assert torch.allclose(got["valence"][:, 0], expected[:, 8], atol=1e-4, rtol=0)
    assert torch.allclose(got["arousal"][:, 0], expected[:, 9], atol=1e-4, rtol=0)

    converted = zoo_checkpoint_path("enet_b0_8_va_mtl")
    config = read_checkpoint_config(converted)
    assert config["trained_on"] == "AffectNet" and config["extra"]["zoo"] == "enet_b0_8_va_mtl"
    assert config["extra"]["source_sha256"] == zoo.sha256_of(use_mirror / "enet_b0_8_va_mtl.pt")
    zoo.local_path("enet_b0_8_va_mtl").unlink()  # later loads read the converted file, not the pickle
    again = load_checkpoint("enet_b0_8_va_mtl")
    with torch.inference_mode():
        assert torch.equal(again(x)["emotion"], got["emotion"])


def test_identity_backbone_from_the_zoo_has_no_heads_and_the_same_features(nets, use_mirror, astronaut):
    _, x = astronaut
    model = load_checkpoint("state_vggface2_enet0_new")
    assert model.head_sizes == {} and model.trained_on == "VGGFace2"
    with torch.inference_mode():
        assert torch.allclose(model.features(x), nets["state_vggface2_enet0_new"](x), atol=1e-4, rtol=0)


def test_facenet_embeddings_from_the_zoo(tmp_path, monkeypatch):
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    original = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631).eval()
    torch.save(original.state_dict(), tmp_path / zoo.get("facenet_vggface2").file)
    monkeypatch.setenv(zoo.MIRROR_ENV, str(tmp_path))
    model = load_facenet()
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        original.classify = False
        assert torch.allclose(model(x), original(x), atol=1e-5)
    with pytest.raises(CheckpointError, match="load_facenet"):
        load_checkpoint("facenet_vggface2")


def test_unsupported_and_unavailable_zoo_models_say_why(use_mirror):
    with pytest.raises(CheckpointError, match="MobileFaceNet"):
        load_checkpoint("mbf_va_mtl")
    with pytest.raises(ModelDownloadError) as info:
        load_checkpoint("enet_b2_8")  # not in the mirror
    assert "FACELAB_ZOO_MIRROR" in str(info.value) and str(zoo.local_path("enet_b2_8")) in str(info.value)


def test_predict_with_a_zoo_name_gives_valence_and_arousal(nets, use_mirror, astronaut, tmp_path, capsys):
    path, x = astronaut
    out = tmp_path / "faces.json"
    code = main(["predict", str(path), "--model", "enet_b0_8_va_mtl", "--json", str(out), "--precision", "fp32"])
    assert code == 0
    (row,) = json.loads(out.read_text())
    with torch.inference_mode():
        expected = nets["enet_b0_8_va_mtl"](x)[0]
    assert row["status"] == "ok" and row["emotion"] == L.EMOTIONS_8[int(expected[:8].argmax())]
    # the CLI crops the MTCNN box itself (same detector, same box): the numbers agree closely
    assert row["valence"] == pytest.approx(float(expected[8]), abs=1e-3)
    assert row["arousal"] == pytest.approx(float(expected[9]), abs=1e-3)
    probs = np.array([row[f"emotion_{c}"] for c in L.EMOTIONS_8])
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert "drawn faces" not in capsys.readouterr().err  # an AffectNet network: no face-world note


def test_predict_with_a_face_world_network_says_so_once(astronaut, tmp_path, capsys):
    from conftest import tiny_model

    from facelab.checkpoints import save_checkpoint

    model = tiny_model(emotion_classes=8, gender=True)
    model.trained_on = L.FACE_WORLD
    save_checkpoint(model, tmp_path / "course")
    code = main(["predict", str(astronaut[0]), "--model", str(tmp_path / "course"), "--json", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 0 and err.count("drawn faces") == 1 and "emotion, gender" in err


def test_download_command_converts_once_against_the_mirror(use_mirror, capsys):
    assert main(["download", "enet_b0_8_best_afew", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert zoo_checkpoint_path("enet_b0_8_best_afew").is_file() and "enet_b0_8_best_afew.safetensors" in out
    assert zoo.cached("enet_b0_8_best_afew") is not None


def test_the_demo_offers_the_paper_network_first(use_mirror, astronaut, tmp_path):
    from facelab.apps.demo import FACE_WORLD_NOTICE, FaceDemo, default_models

    models = default_models(tmp_path, train_seconds=0, precision="fp32")
    names = list(models)
    assert names[0] == "paper: enet_b0_8_best_afew (AffectNet)" and names[1].startswith("UNTRAINED")
    app = FaceDemo(models)
    assert app.model_name == names[0] and app.notice.value == ""  # a real emotion network: no notice
    app.upload_file(astronaut[0])
    assert app.status_kind == "ok" and "1 face found" in app.status
    assert app.last_result.iloc[0]["emotion"] in L.EMOTIONS_8 and app.face_world_heads == []
    assert "FACELAB_ZOO_MIRROR" not in FACE_WORLD_NOTICE and "drawn faces" in FACE_WORLD_NOTICE


@pytest.mark.slow
def test_notebook_07_compares_the_two_networks_when_the_paper_network_can_be_had(use_mirror, tmp_path, monkeypatch):
    """Offline (CI) notebook 07 skips its comparison with a message; with the network at hand it runs it."""
    import nbformat
    from nbclient import NotebookClient

    from facelab.checkpoints import save_checkpoint
    from facelab.apps.demo import tiny_model_path, untrained_model

    cache = tmp_path / "models"
    tiny = untrained_model()
    tiny.trained_on = L.FACE_WORLD
    save_checkpoint(tiny, tiny_model_path(cache))  # the notebook's fallback model, so that it does not train
    monkeypatch.setenv("FACELAB_MODELS", str(cache))
    root = Path(__file__).resolve().parent.parent / "notebooks"
    nb = nbformat.read(root / "07_upload_and_predict_demo.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    summary = json.loads(text.split("FACELAB_SUMMARY ", 1)[1].splitlines()[0])
    assert summary["astronaut_faces"] == {"course network (face world)": 1, "paper: enet_b0_8_best_afew (AffectNet)": 1}
    assert "is not on this machine" not in text and "paper: enet_b0_8_best_afew (AffectNet): Emotion from" in text


def test_import_hsemotion_guesses_the_tf_variant_from_a_published_file(nets, mirror, astronaut, tmp_path):
    """No backbone= given: the file name says B0, its Conv2dSame layers say the TensorFlow-padding variant."""
    from facelab.checkpoints import import_hsemotion

    model = import_hsemotion(mirror / "enet_b0_8_best_afew.pt", tmp_path / "afew")
    assert model.backbone_name == "tf_efficientnet_b0"
    with torch.inference_mode():
        assert torch.allclose(model(astronaut[1])["emotion"], nets["enet_b0_8_best_afew"](astronaut[1]), atol=1e-4)
