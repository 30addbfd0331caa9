"""Training loops: data preloading, the paper's stages, frozen parts, budget, resume, CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from facelab.errors import DatasetFormatError, ImageDecodeError, InvalidInputError
from facelab.models import MultiTaskNet
from facelab.data.tensors import FaceTensors, normalize, preload
from facelab.training.config import TrainConfig
from facelab.training.loop import ShardedBatches, class_counts, face_loader
from facelab.training.train import train_attributes, train_emotion, train_identity

TINY = "test_efficientnet"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from several threads, and on busy shared cores the idle
    threads' spinning makes every step several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ToyFaces(torch.utils.data.Dataset):
    """Tiny coloured 'faces' whose colour depends on the label (so a CNN can learn it)."""

    def __init__(self, n, key="emotion", num_classes=8, seed=0, size=(20, 18), names=None, tensor=False):
        rng = np.random.default_rng(seed)
        self.key = key
        self.y = rng.integers(0, num_classes, n)
        palette = np.random.default_rng(99).integers(0, 256, (num_classes, 3))  # same colours for every split
        self.images = [np.clip(palette[c] + rng.normal(0, 12, (*size, 3)), 0, 255).astype(np.uint8) for c in self.y]
        self.tensor = tensor
        self.label_names = {key: names} if names else {}

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        image = torch.from_numpy(self.images[i]).permute(2, 0, 1) if self.tensor else self.images[i]
        return image, {self.key: int(self.y[i]), "person": f"p{self.y[i]}"}


class UTKToy(ToyFaces):
    def __getitem__(self, i):
        image, _ = super().__getitem__(i)
        return image, {"age": int(5 + 10 * self.y[i]), "gender": int(self.y[i] % 2), "race": int(self.y[i] % 5)}


def tiny_model(**heads):
    torch.manual_seed(0)
    return MultiTaskNet(TINY, age_hidden=8, **heads)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- data -------------------------------------------------------------------------
def test_preload_resizes_once_and_keeps_labels():
    data = preload(ToyFaces(5, num_classes=3, tensor=True), 16, progress=False)
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels["emotion"].tolist() == ToyFaces(5, num_classes=3).y.tolist()
    assert "person" not in data.labels  # string metadata is not a training label
    # a uniform colour stays that colour after the antialiased resize
    flat = np.full((20, 30, 3), (10, 200, 90), np.uint8)
    one = preload([(flat, {"emotion": 1})], 8, progress=False)
    assert one.images[0, :, 4, 4].tolist() == [10, 200, 90]


def test_preload_crops_a_face_box_and_reports_failures():
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:20, 20:40] = 255  # the face box (x1, y1, x2, y2) = (20, 10, 40, 20) is all white

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            if i == 1:
                raise ImageDecodeError("photo_1.jpg: truncated file")
            return image, {"emotion": i, "box": (20, 10, 40, 20)}

    with pytest.warns(UserWarning, match="1 of 3 items"):
        data = preload(Broken(), 8, progress=False)
    assert len(data) == 2 and data.labels["emotion"].tolist() == [0, 2]
    assert data.skipped[0][0] == 1 and "truncated" in data.skipped[0][1]
    assert int(data.images.min()) == 255


def test_preload_rejects_wrong_images():
    with pytest.raises(DatasetFormatError, match="none of the 1 items"):
        preload([(np.zeros((8, 8), np.uint8), {"emotion": 0})], 8, progress=False)
    with pytest.raises(DatasetFormatError, match="labels must be a dict"):
        preload([(np.zeros((8, 8, 3), np.uint8), 3)], 8, progress=False)
    with pytest.raises(InvalidInputError):
        FaceTensors(torch.zeros(2, 3, 4, 4), {})


def test_normalize_uses_imagenet_mean_std_and_channels_last():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    x = normalize(images)
    assert x[0, :, 0, 0].tolist() == pytest.approx([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_batches_are_a_seeded_permutation():
    inputs = torch.arange(10)
    first = [b.tolist() for b, _ in face_loader(inputs, {}, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    again = [b.tolist() for b, _ in face_loader(inputs, {}, 4, shuffle=True, generator=torch.Generator().manual_seed(3))]
    assert first == again and [len(b) for b in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10))


def test_a_last_batch_of_one_joins_the_batch_before():
    """BatchNorm cannot train on one item: 9 items in batches of 4 give 4 + 5, none left out."""
    chunks = [b.tolist() for b, _ in face_loader(torch.arange(9), {}, 4, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))]
    assert [len(b) for b in chunks] == [4, 5] and sorted(sum(chunks, [])) == list(range(9))
    assert [len(b) for b, _ in face_loader(torch.arange(1), {}, 4, shuffle=True)] == [1]
    model = tiny_model()
    history = train_emotion(model, ToyFaces(11), weighted=False, epochs=(0, 1), img_size=32, batch_size=5,
                            progress=False)  # 11 = 5 + 6 with all weights (BatchNorm) training
    assert len(history) == 1 and np.isfinite(history["loss"]).all()


def test_class_counts():
    assert class_counts(torch.tensor([0, 2, 2, -1, 2]), 4) == [1, 0, 3, 0]
    with pytest.raises(DatasetFormatError):
        class_counts(torch.tensor([5]), 4)


# --- the paper's stages ------------------------------------------------------------------
def test_identity_stage_a_trains_the_head_only_then_stage_b_everything():
    model = tiny_model()
    train = ToyFaces(24, key="identity", num_classes=4)
    history = train_identity(model, train, epochs=(1, 0), img_size=32, batch_size=8, progress=False)
    assert model.head_sizes == {"identity": 4}
    before = state(model)
    assert list(history["stage"]) == ["A"] and history["images"].tolist() == [24]
    fresh = tiny_model()
    fresh.add_head("identity", 4)
    backbone_keys = [k for k in before if k.startswith("backbone.")]
    assert all(torch.equal(before[k], fresh.state_dict()[k]) for k in backbone_keys)  # stage A: backbone frozen
    history = train_identity(model, train, epochs=(0, 1), img_size=32, batch_size=8, progress=False)
    after = model.state_dict()
    assert list(history["stage"]) == ["B"]
    assert any(not torch.equal(before[k], after[k]) for k in backbone_keys)  # stage B: backbone trained
    assert {"loss", "train_acc", "seconds", "epoch"} <= set(history.columns)
    assert model.preprocessing["image_size"] == 32


def test_attributes_leave_backbone_and_other_heads_untouched():
    model = tiny_model(num_identities=3)
    before = state(model)
    train, val = UTKToy(30, num_classes=6), UTKToy(12, num_classes=6, seed=1)
    history = train_attributes(model, train, epochs=2, img_size=32, batch_size=10, val_set=val, progress=False)
    after = model.state_dict()
    unchanged = [k for k in before if k.startswith("backbone.") or k.startswith("heads.identity")]
    assert all(torch.equal(before[k], after[k]) for k in unchanged)
    assert set(model.heads) == {"identity", "age", "gender", "race"}
    assert {"train_age_acc", "train_gender_acc", "train_race_acc", "val_age_mae", "val_age_mae_argmax",
            "val_gender_acc", "val_race_bal_acc"} <= set(history.columns)
    assert len(history) == 2


def test_emotion_learns_and_uses_the_dataset_classes():
    from facelab import labels as L

    model = tiny_model(num_identities=3)
    names = list(L.EMOTIONS_7)
    train = ToyFaces(70, num_classes=7, names=names)
    val = ToyFaces(35, num_classes=7, names=names, seed=1)
    history = train_emotion(model, train, epochs=(6, 0), lr=(3e-2, 1e-4), img_size=32, batch_size=10,
                            val_set=val, progress=False)
    assert model.head_sizes["emotion"] == 7 and model.label_names["emotion"] == names
    # colour decides the class: a linear head on x gets well above chance (1/7)
    assert history["val_emotion_acc"].iloc[-1] > 0.5
    assert history["train_acc"].iloc[-1] > history["train_acc"].iloc[0]


def test_weighted_and_plain_losses_differ_on_imbalanced_data():
    rng = np.random.default_rng(0)
    train = ToyFaces(40, num_classes=8)
    train.y = np.where(rng.random(40) < 0.7, 4, train.y)  # mostly Happiness
    results = {}
    for weighted in (True, False):
        model = tiny_model()
        history = train_emotion(model, train, weighted=weighted, epochs=(1, 0), img_size=32, batch_size=10,
                                progress=False)
        results[weighted] = history["loss"].iloc[0]
    assert results[True] != pytest.approx(results[False], rel=1e-3)


def test_max_seconds_stops_and_marks_the_row():
    model = tiny_model()
    history = train_identity(model, ToyFaces(30, key="identity", num_classes=3), epochs=(1, 5), img_size=32,
                             batch_size=10, max_seconds=1e-9, progress=False)
    assert len(history) <= 1
    if len(history):
        assert not history["finished"].iloc[0] and history["images"].iloc[0] < 30


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        train = ToyFaces(16, key="identity", num_classes=3)
        kwargs = dict(epochs=(2, 2), img_size=32, batch_size=8, progress=False)

        straight = tiny_model()
        h_straight = train_identity(straight, train, **kwargs)

        class Crash(Exception):
            pass

        def crash_after_stage_b_epoch_1(row):
            if row["stage"] == "B" and row["epoch"] == 1:
                raise Crash()

        interrupted = tiny_model()
        with pytest.raises(Crash):
            train_identity(interrupted, train, checkpoint=tmp_path / "run", callback=crash_after_stage_b_epoch_1,
                           **kwargs)
        resumed = tiny_model()
        h_resumed = train_identity(resumed, train, checkpoint=tmp_path / "run", resume=tmp_path / "run", **kwargs)
        for key, value in straight.state_dict().items():
            assert torch.equal(value, resumed.state_dict()[key]), key
        assert h_resumed["loss"].tolist() == h_straight["loss"].tolist()
        assert list(zip(h_resumed["stage"], h_resumed["epoch"])) == [("A", 1), ("A", 2), ("B", 1), ("B", 2)]

        # resuming in the middle of stage A (SAM state included) works too
        def crash_after_stage_a_epoch_1(row):
            if row["stage"] == "A" and row["epoch"] == 1:
                raise Crash()

        with pytest.raises(Crash):
            train_identity(tiny_model(), train, checkpoint=tmp_path / "a", callback=crash_after_stage_a_epoch_1,
                           **kwargs)
        resumed_a = tiny_model()
        train_identity(resumed_a, train, resume=tmp_path / "a", **kwargs)
        assert all(torch.equal(v, resumed_a.state_dict()[k]) for k, v in straight.state_dict().items())
    finally:
        torch.use_deterministic_algorithms(False)


def test_resume_of_another_task_is_refused(tmp_path):
    train = ToyFaces(16, key="identity", num_classes=2)
    train_identity(tiny_model(), train, epochs=(1, 0), img_size=32, batch_size=8, checkpoint=tmp_path / "id",
                   progress=False)
    with pytest.raises(InvalidInputError, match="not of 'emotion'"):
        train_emotion(tiny_model(), ToyFaces(16), epochs=(1, 0), img_size=32, resume=tmp_path / "id", progress=False)


# --- command line --------------------------------------------------------------------------
def test_cli_train_and_evaluate_emotion(tmp_path, capsys):
    from facelab.apps.cli import main

    toy = ToyFaces(16, num_classes=8)
    for split in ("train", "val"):
        for i, (image, label) in enumerate(zip(toy.images, toy.y)):
            from facelab import labels as L

            folder = tmp_path / "affectnet" / split / L.EMOTIONS_8[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    out = tmp_path / "emotion"
    code = main(["train", "emotion", "--data", str(tmp_path / "affectnet"), "--out", str(out), "--backbone", TINY,
                 "--img-size", "32", "--epochs", "1", "1", "--batch-size", "8"])
    assert code == 0 and (tmp_path / "emotion.safetensors").is_file() and (tmp_path / "emotion.json").is_file()
    capsys.readouterr()
    code = main(["evaluate", "emotion", "--data", str(tmp_path / "affectnet"), "--model", str(out),
                 "--json", str(tmp_path / "m.json")])
    printed = capsys.readouterr().out
    assert code == 0 and "balanced_accuracy" in printed and "7class_accuracy" in printed
    assert main(["evaluate", "emotion", "--data", str(tmp_path / "nowhere"), "--model", str(out)]) == 2
    # the same evaluation of the network exported to ONNX: one runner contract, either backend
    pytest.importorskip("onnxruntime")
    assert main(["export-onnx", str(out) + ".safetensors", str(tmp_path / "emotion.onnx")]) == 0
    assert main(["evaluate", "emotion", "--data", str(tmp_path / "affectnet"), "--model",
                 str(tmp_path / "emotion.onnx"), "--backend", "onnx", "--json", str(tmp_path / "onnx.json")]) == 0
    by_torch, by_onnx = (json.loads((tmp_path / name).read_text()) for name in ("m.json", "onnx.json"))
    assert by_onnx["confusion_matrix"] == by_torch["confusion_matrix"] and by_onnx["n"] == by_torch["n"] == 16


# --- several processes --------------------------------------------------------------------
DDP_SCRIPT = '''
import os, sys
import numpy as np
import torch
from facelab.models import MultiTaskNet
from facelab.training.train import train_identity


def run(out, backbone="test_efficientnet_gn"):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (4, 3))
    y = rng.integers(0, 4, 32)
    data = [(np.clip(palette[c] + rng.normal(0, 20, (24, 24, 3)), 0, 255).astype(np.uint8), {"identity": int(c)})
            for c in y]
    torch.manual_seed(0)
    model = MultiTaskNet(backbone)
    history = train_identity(model, data, epochs=(1, 1), img_size=32, batch_size=8, progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"weights": model.state_dict(), "loss": history["loss"].tolist(),
                    "images": history["images"].tolist()}, out)


if __name__ == "__main__":
    run(sys.argv[1])
'''


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): each process trains half of every batch of 8 and
    DDP averages the gradients.  The backbone uses GroupNorm (no batch statistics), so both
    runs compute the same updates; the weights agree to 1e-4 (float summation order differs)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "ddp.pt")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    namespace = {}
    exec(compile(DDP_SCRIPT, "ddp_run", "exec"), namespace)
    namespace["run"](str(tmp_path / "single.pt"))
    ddp, single = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "single.pt")
    assert ddp["images"] == single["images"] == [32, 32]
    assert ddp["loss"] == pytest.approx(single["loss"], abs=1e-4)
    for key, value in single["weights"].items():
        assert torch.allclose(ddp["weights"][key].float(), value.float(), atol=1e-4, rtol=0), key


@pytest.mark.parametrize("n, batch_size, world, updates", [(21, 4, 1, 5), (22, 4, 1, 6), (9, 4, 1, 2), (1, 4, 1, 1),
                                                          (10, 4, 3, 2), (9, 4, 2, 2)])
def test_the_number_of_updates_per_epoch_is_what_the_loader_yields(n, batch_size, world, updates):
    """The cosine schedule's length counts the updates that happen (a tail of one joins the batch before)."""
    for rank in range(world):
        sampler = ShardedBatches(n, batch_size, shuffle=True, generator=torch.Generator().manual_seed(0),
                                 shard=(rank, world))
        assert len(sampler) == len(list(sampler)) == updates
