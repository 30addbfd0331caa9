"""Training schedule extras: face augmentation (augment_faces), the cosine learning rate
(Stage.lr_at and Stage.scheduler, torch's LambdaLR), and resuming a run that uses both."""
import math

import pytest
import torch
from torch import nn

from facelab.checkpoints import load_training_state
from facelab.sam import SAM
from facelab.data.tensors import FaceTensors
from facelab.training.augment import augment_faces
from facelab.training.loop import Objective, Stage, train_one_epoch
from facelab.training.train import train_emotion
from conftest import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def random_faces(n, size=16, seed=0):
    """uint8 (n, 3, size, size) noise: no image equals its mirror."""
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def max_diff(a, b):
    """Largest difference in grey levels between two uint8 images (or batches)."""
    return int((a.int() - b.int()).abs().max())


# --- augment_faces ---------------------------------------------------------------------
def test_augment_keeps_shape_and_dtype_and_is_seeded():
    images = random_faces(6)
    out = augment_faces(images, torch.Generator().manual_seed(3))
    assert out.shape == (6, 3, 16, 16) and out.dtype == torch.uint8
    assert torch.equal(images, random_faces(6))  # the input is not changed in place
    again = augment_faces(images, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    other = augment_faces(images, torch.Generator().manual_seed(4))
    assert max_diff(out, other) > 50


def test_augment_with_everything_off_returns_the_input():
    images = random_faces(5)
    out = augment_faces(images, torch.Generator().manual_seed(0), flip=False, shift=0, scale=0, rotate=0)
    assert out.dtype == torch.uint8
    assert max_diff(out, images) <= 1


def test_augment_flip_only_gives_the_image_or_its_mirror():
    n = 64
    images = random_faces(n)
    out = augment_faces(images, torch.Generator().manual_seed(1), flip=True, shift=0, scale=0, rotate=0)
    same = [max_diff(out[i], images[i]) for i in range(n)]
    mirror = [max_diff(out[i], images[i].flip(-1)) for i in range(n)]
    assert all(min(s, m) <= 1 for s, m in zip(same, mirror)), list(zip(same, mirror))
    flipped = sum(m <= 1 for m in mirror)
    assert 16 <= flipped <= 48  # probability 1/2 each: 32 expected
    assert all(s > 100 for s, m in zip(same, mirror) if m <= 1)  # a flipped noise image really differs


def test_augment_of_an_empty_batch_is_empty():
    empty = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    out = augment_faces(empty, torch.Generator().manual_seed(0))
    assert out.shape == (0, 3, 16, 16) and out.dtype == torch.uint8


# --- Stage.lr_at -------------------------------------------------------------------------
def test_lr_at_is_none_without_cosine():
    assert Stage("B", 2, 0.1, train_backbone=True, sam=False).lr_at(5) is None
    assert Stage("B", 2, 0.1, train_backbone=True, sam=False, cosine=False).lr_at(5) is None


def test_cosine_lr_at_goes_from_lr_to_zero():
    lr_at = Stage("B", 2, 0.1, train_backbone=True, sam=False, cosine=True).lr_at(5)  # 10 steps
    assert lr_at(0) == pytest.approx(0.1, abs=1e-12)
    assert lr_at(5) == pytest.approx(0.05, abs=1e-9)  # half way: lr / 2
    # hand-computed: lr (1 + cos(pi s / 10)) / 2 with cos(pi/5) = (1 + sqrt 5) / 4
    assert lr_at(2) == pytest.approx(0.1 * (5 + math.sqrt(5)) / 8, abs=1e-12)  # 0.0904508...
    assert lr_at(8) == pytest.approx(0.1 * (3 - math.sqrt(5)) / 8, abs=1e-12)  # 0.0095491...
    assert 0 < lr_at(9) < 0.003  # the last update: 0.00244...
    rates = [lr_at(step) for step in range(14)]  # past the end it stays at 0
    assert all(rate >= 0 for rate in rates) and rates[10:] == pytest.approx([0.0] * 4, abs=1e-12)
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # never goes up

    lr_at = Stage("B", 1, 1e-3, train_backbone=True, sam=False, cosine=True).lr_at(4)  # 4 steps
    assert lr_at(1) == pytest.approx(1e-3 * (2 + math.sqrt(2)) / 4, abs=1e-15)  # cos(pi/4) = sqrt(2)/2
    assert lr_at(3) == pytest.approx(1e-3 * (2 - math.sqrt(2)) / 4, abs=1e-15)


# --- train_one_epoch with Stage.scheduler (torch's LambdaLR) ----------------------------------
def linear_problem(n=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), {"emotion": torch.randint(0, 3, (n,), generator=g)}


@pytest.mark.parametrize("use_sam", [False, True])
def test_the_cosine_scheduler_sets_the_rate_of_every_update(use_sam):
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    stage = Stage("B", 2, 0.1, train_backbone=True, sam=use_sam, cosine=True)  # 2 epochs x 3 updates
    optimizer = stage.optimizer(layer.parameters(), rho=0.05)
    used = []  # the learning rate each forward pass ran under

    def forward(x):
        used.append(optimizer.param_groups[0]["lr"])
        return {"emotion": layer(x)}

    def run(scheduler):
        used.clear()
        inputs, labels = linear_problem(10)  # batch_size 4: 3 updates
        return train_one_epoch(forward, inputs, labels, Objective({"emotion": ("ce", None)}), optimizer,
                               batch_size=4, generator=torch.Generator().manual_seed(0), use_sam=use_sam,
                               progress=False, scheduler=scheduler)

    passes = 2 if use_sam else 1  # SAM: two forward passes per update
    lr_at = stage.lr_at(3)
    result = run(stage.scheduler(optimizer, 3, first_step=3))  # the second epoch: updates 3, 4, 5
    assert result["finished"] and result["images"] == 10
    assert used == [lr_at(3)] * passes + [lr_at(4)] * passes + [lr_at(5)] * passes
    assert lr_at(3) == pytest.approx(0.05, abs=1e-15) and lr_at(5) < lr_at(4) < lr_at(3)
    assert optimizer.param_groups[0]["lr"] == lr_at(6) == 0.0  # after the last update: the end of the stage
    if use_sam:
        assert optimizer.base_optimizer.param_groups[0]["lr"] == 0.0

    run(None)  # no schedule: the optimizer's rate stays
    assert used == [0.0] * 3 * passes
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    run(None)  # the rate set is the rate of the update: lr 0 moves nothing
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())
    assert Stage("B", 2, 0.1, train_backbone=True, sam=use_sam).scheduler(optimizer, 3) is None


# --- resume with augmentation and the cosine schedule ------------------------------------------
def toy_emotions(n=16, size=32, classes=3):
    """Noisy coloured squares, one colour per emotion class, as preloaded FaceTensors."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, classes, (n,), generator=g)
    palette = torch.randint(0, 256, (classes, 3, 1, 1), generator=g).float()
    images = (palette[y] + 12 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
    return FaceTensors(images, {"emotion": y})


def test_resume_with_augmentation_and_cosine_gives_the_same_weights(tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        train = toy_emotions()
        lr_b = 1e-2
        kwargs = dict(epochs=(0, 2), lr=(1e-3, lr_b), img_size=32, batch_size=8, progress=False)  # 2 steps/epoch

        straight = tiny_model(num_identities=3)
        h_straight = train_emotion(straight, train, augment=True, cosine=True, **kwargs)

        class Crash(Exception):
            pass

        def crash_after_epoch_1(row):
            if row["epoch"] == 1:
                raise Crash()

        with pytest.raises(Crash):
            train_emotion(tiny_model(num_identities=3), train, augment=True, cosine=True,
                          checkpoint=tmp_path / "run", callback=crash_after_epoch_1, **kwargs)
        # the state after epoch 1 holds the rate of the next update (step 2 of 4: lr / 2)
        lr_at = Stage("B", 2, lr_b, train_backbone=True, sam=False, cosine=True).lr_at(2)
        saved_lr = load_training_state(tmp_path / "run")["optimizer"]["param_groups"][0]["lr"]
        assert saved_lr == pytest.approx(lr_b / 2, abs=1e-15) == lr_at(2)

        resumed = tiny_model(num_identities=3)
        h_resumed = train_emotion(resumed, train, augment=True, cosine=True, checkpoint=tmp_path / "run",
                                  resume=True, **kwargs)
        for key, value in straight.state_dict().items():
            assert torch.equal(value, resumed.state_dict()[key]), key
        assert h_resumed["loss"].tolist() == h_straight["loss"].tolist()
        assert list(zip(h_resumed["stage"], h_resumed["epoch"])) == [("B", 1), ("B", 2)]
        # the resumed stage went on counting updates from 2: after the last one (3 of 4) the rate is 0
        final_lr = load_training_state(tmp_path / "run")["optimizer"]["param_groups"][0]["lr"]
        assert final_lr == lr_at(4) == 0.0

        # augmentation and the schedule did change the run (so the equality above is not trivial)
        plain = tiny_model(num_identities=3)
        train_emotion(plain, train, augment=False, cosine=True, **kwargs)
        constant = tiny_model(num_identities=3)
        train_emotion(constant, train, augment=True, cosine=False, **kwargs)
        weights = straight.state_dict()
        for other in (plain, constant):
            assert any(not torch.equal(v, other.state_dict()[k]) for k, v in weights.items())
    finally:
        torch.use_deterministic_algorithms(False)
