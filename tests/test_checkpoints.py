"""Checkpoints: round trip, config/tensor mismatch, atomic writes, safe loading, HSEmotion import."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from facelab.paths import TMP_SUFFIX
from facelab import labels as L
from facelab.checkpoints import (
    config_path, import_hsemotion, load_checkpoint, read_checkpoint_config, save_checkpoint, save_training_state,
)
from facelab.errors import CheckpointError, UnsafeCheckpointError
from conftest import TINY, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


def outputs(model, seed=1):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(images)


def test_round_trip_gives_the_same_outputs(tmp_path):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "run", extra_config={"note": "hello"})
    assert path == tmp_path / "run.safetensors" and path.is_file()
    loaded = load_checkpoint(tmp_path / "run")
    for head, logits in outputs(model).items():
        assert torch.equal(logits, outputs(loaded)[head]), head
    config = read_checkpoint_config(path)
    assert config["backbone"] == TINY and config["heads"]["emotion"] == 8
    assert config["labels"]["emotion"] == list(L.EMOTIONS_8)
    assert config["preprocessing"] == {"image_size": 32, "mean": list(L.IMAGENET_MEAN),
                                       "std": list(L.IMAGENET_STD), "color": "RGB", "crop": "tight"}
    assert config["extra"] == {"note": "hello"} and config["facelab_version"]
    # the readable JSON beside it is the same config
    assert json.loads(config_path(path).read_text()) == config
    assert loaded.label_names == model.label_names and loaded.preprocessing == model.preprocessing


def _rewrite_config(path, change):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["facelab_config"])
    change(config)
    save_file(load_file(str(path)), str(path), metadata={"facelab_config": json.dumps(config)})


def test_wrong_class_count_is_named(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "m")

    def seven_classes(config):
        config["heads"]["emotion"] = 7
        config["labels"]["emotion"] = list(L.EMOTIONS_7)

    _rewrite_config(path, seven_classes)
    with pytest.raises(CheckpointError, match=r"head 'emotion': config says 7 outputs.*tensors have 8"):
        load_checkpoint(path)
    _rewrite_config(path, lambda c: c["heads"].update(emotion=6))  # config inconsistent in itself
    with pytest.raises(CheckpointError, match="emotion"):
        load_checkpoint(path)


def test_wrong_backbone_is_named(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "m")
    _rewrite_config(path, lambda c: c.update(backbone="mobilenetv1_100"))
    with pytest.raises(CheckpointError, match=r"config says backbone 'mobilenetv1_100' but the tensors do not fit"):
        load_checkpoint(path)


def test_missing_or_extra_head_is_named(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "m")
    _rewrite_config(path, lambda c: c["heads"].pop("race"))
    with pytest.raises(CheckpointError, match="'race' head that the config does not list"):
        load_checkpoint(path)


def test_bad_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not a facelab checkpoint"):
        load_checkpoint(plain)
    good = save_checkpoint(tiny_model(), tmp_path / "good")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)


def test_pickled_models_are_never_unpickled_by_load_checkpoint(tmp_path):
    pickled = tmp_path / "model.pt"
    torch.save(timm.create_model(TINY, num_classes=8), pickled)
    with pytest.raises(UnsafeCheckpointError, match="import_hsemotion"):
        load_checkpoint(pickled)


def test_training_state_loads_as_a_model(tmp_path):
    model = tiny_model()
    from facelab.checkpoints import checkpoint_config

    save_training_state(tmp_path / "run", {"config": checkpoint_config(model), "model": model.state_dict()})
    loaded = load_checkpoint(tmp_path / "run.state.pt")
    assert torch.equal(outputs(model)["emotion"], outputs(loaded)["emotion"])


def test_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    old = tiny_model(seed=0)
    path = save_checkpoint(old, tmp_path / "ckpt")
    expected = outputs(old)["emotion"]
    # A second process starts overwriting the checkpoint with other weights; it hangs after
    # writing the temporary file (inside fsync), and we kill it there.
    script = textwrap.dedent(f"""
        import os, sys, time, torch
        from facelab.models import MultiTaskNet
        from facelab.checkpoints import save_checkpoint
        torch.manual_seed(123)
        model = MultiTaskNet({TINY!r}, num_identities=3, emotion_classes=8, gender=True, race=True, age=True,
                             age_hidden=8)
        def hang(fd):
            print("writing", flush=True)
            time.sleep(120)
        os.fsync = hang
        save_checkpoint(model, {str(tmp_path / "ckpt")!r})
        print("finished", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temporary = [p for p in tmp_path.iterdir() if p.name.endswith(TMP_SUFFIX)]
        assert temporary and temporary[0].stat().st_size > 0  # the new bytes exist, but only in a temp file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    loaded = load_checkpoint(path)
    assert torch.equal(outputs(loaded)["emotion"], expected)


def hsemotion_like(num_classes, seed=0):
    """A timm model saved the way HSEmotion releases are: classifier = Sequential(Linear)."""
    torch.manual_seed(seed)
    model = timm.create_model(TINY, num_classes=num_classes)
    model.classifier = nn.Sequential(nn.Linear(model.num_features, num_classes))
    nn.init.normal_(model.classifier[0].weight, std=0.5)
    return model.eval()


@pytest.mark.parametrize("trust_pickle", [False, True])
def test_import_hsemotion_reproduces_the_logits(tmp_path, trust_pickle):
    original = hsemotion_like(8)
    pt = tmp_path / "enet_b0_8_best_afew.pt"
    torch.save(original, pt)
    model = import_hsemotion(pt, tmp_path / "enet_b0_8", backbone=TINY, trust_pickle=trust_pickle)
    assert model.label_names["emotion"] == list(L.EMOTIONS_8)
    assert model.preprocessing["image_size"] == 224  # B0 -> 224 px
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = original(images)
        assert torch.allclose(model(images)["emotion"], expected, atol=1e-5, rtol=0)
        reloaded = load_checkpoint(tmp_path / "enet_b0_8")
        assert torch.allclose(reloaded(images)["emotion"], expected, atol=1e-5, rtol=0)
    config = read_checkpoint_config(tmp_path / "enet_b0_8")
    assert config["backbone"] == TINY and config["trained_on"] == "AffectNet" and reloaded.trained_on == "AffectNet"
    assert config["extra"]["imported_from"] == pt.name


def test_import_hsemotion_seven_classes_and_sizes(tmp_path):
    seven = timm.create_model(TINY, num_classes=7).eval()  # a plain Linear classifier works too
    torch.save(seven, tmp_path / "custom_7.pt")
    model = import_hsemotion(tmp_path / "custom_7.pt", tmp_path / "c7", trust_pickle=True)
    assert model.label_names["emotion"] == list(L.EMOTIONS_7)
    assert model.preprocessing["image_size"] == 160  # from the model's own config (only a trusted pickle has it)
    assert import_hsemotion(tmp_path / "custom_7.pt", tmp_path / "c7s", backbone=TINY).preprocessing["image_size"] \
        == 224  # read safely: no config survives, so the published default
    with pytest.raises(CheckpointError, match="cannot tell which timm architecture"):
        import_hsemotion(tmp_path / "custom_7.pt", tmp_path / "c7x")  # neither a known name nor backbone=
    torch.save(hsemotion_like(8), tmp_path / "enet_b2_8.pt")
    assert import_hsemotion(tmp_path / "enet_b2_8.pt", tmp_path / "b2", backbone=TINY) \
        .preprocessing["image_size"] == 260  # B2 -> 260 px
    torch.save(timm.create_model(TINY, num_classes=5), tmp_path / "five.pt")
    with pytest.raises(CheckpointError, match="8 or 7"):
        import_hsemotion(tmp_path / "five.pt", tmp_path / "five", backbone=TINY)


def test_checkpoint_files_get_the_usual_permissions(tmp_path):
    # the atomic write goes through mkstemp (0600); the saved files must be readable by others (0666 - umask)
    import os
    import stat

    from facelab.checkpoints import atomic_write_bytes

    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "x.bin", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"abc"
