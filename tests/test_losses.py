"""Eq. (1) (age expectation) and eq. (2) (class-weighted cross-entropy) against hand-computed numbers."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from facelab.errors import InvalidInputError
from facelab.losses import age_expectation, class_weighted_cross_entropy, class_weights


def test_class_weights_are_max_count_over_count():
    assert class_weights([100, 50, 10]).tolist() == [1.0, 2.0, 10.0]
    # a class without training images gets weight 0 instead of infinity
    assert class_weights([4, 0, 2]).tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize("bad", [[0, 0], [], [[1, 2]], [3, -1], [1.0, float("nan")]])
def test_class_weights_reject_bad_counts(bad):
    with pytest.raises(InvalidInputError):
        class_weights(bad)


def test_weighted_cross_entropy_hand_computed():
    # counts N = (10, 5, 5) -> weights max N / N_y = (1, 2, 2)
    # image 1: z = (2, 0, 0), y = 0: -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2) = 0.2395447662
    # image 2: z = (0, 1, 0), y = 1: -log(e / (e + 2))     = log(1 + 2 / e)   = 0.5514447140
    # eq. (2), plain mean over the batch: (1 * 0.2395447662 + 2 * 0.5514447140) / 2 = 0.6712170970
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    targets = torch.tensor([0, 1])
    loss = class_weighted_cross_entropy(logits, targets, [10, 5, 5])
    assert loss.item() == pytest.approx(0.6712170970, abs=1e-7)
    # ... which is NOT what torch's weighted cross-entropy gives (it divides by the sum of weights, 3)
    torch_loss = F.cross_entropy(logits, targets, weight=torch.tensor([1.0, 2.0, 2.0]))
    assert torch_loss.item() == pytest.approx((0.2395447662 + 2 * 0.5514447140) / 3, abs=1e-7)
    assert abs(torch_loss.item() - loss.item()) > 0.2


def test_weighted_cross_entropy_equals_plain_with_equal_counts():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 3, 1, 2])
    assert class_weighted_cross_entropy(logits, targets, [7, 7, 7, 7]).item() == pytest.approx(
        F.cross_entropy(logits, targets).item(), abs=1e-6)


def test_weighted_cross_entropy_gradient_scales_rare_class():
    logits = torch.zeros(1, 2, requires_grad=True)
    class_weighted_cross_entropy(logits, torch.tensor([1]), [30, 10]).backward()
    # d/dz of 3 * -log softmax(z)_1 at z = 0: 3 * (softmax - onehot) = 3 * (0.5, -0.5)
    assert logits.grad[0].tolist() == pytest.approx([1.5, -1.5])


def test_weighted_cross_entropy_rejects_mismatch_and_unseen_class():
    with pytest.raises(InvalidInputError, match="3 class counts"):
        class_weighted_cross_entropy(torch.zeros(2, 4), torch.tensor([0, 1]), [1, 2, 3])
    with pytest.raises(InvalidInputError, match="N_y is 0"):
        class_weighted_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), [5, 0, 2])


def test_age_expectation_hand_computed():
    # ages 1..5 with posteriors P = (0.10, 0.40, 0.30, 0.15, 0.05)
    probs = torch.tensor([0.10, 0.40, 0.30, 0.15, 0.05])
    # L = 1: the most probable age, 2
    assert age_expectation(probs, top_l=1).item() == pytest.approx(2.0)
    # L = 3: ages {2, 3, 4}: (2*0.40 + 3*0.30 + 4*0.15) / (0.40 + 0.30 + 0.15) = 2.3 / 0.85
    assert age_expectation(probs, top_l=3).item() == pytest.approx(2.3 / 0.85, abs=1e-6)
    # L = C_a: the full expectation 1*0.1 + 2*0.4 + 3*0.3 + 4*0.15 + 5*0.05 = 2.65
    assert age_expectation(probs, top_l=5).item() == pytest.approx(2.65, abs=1e-6)


def test_age_expectation_batch_and_errors():
    probs = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    assert age_expectation(probs, top_l=2).tolist() == pytest.approx([3.0, 1.5])
    with pytest.raises(InvalidInputError):
        age_expectation(probs, top_l=4)
    with pytest.raises(InvalidInputError):
        age_expectation(torch.zeros(2, 3, 4))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.001, 1.0), min_size=2, max_size=12), st.integers(1, 12))
def test_age_expectation_lies_between_top_ages(weights, top_l):
    top_l = min(top_l, len(weights))
    probs = torch.tensor(weights) / sum(weights)
    ages = (probs.topk(top_l).indices + 1).float()
    value = age_expectation(probs, top_l=top_l).item()
    assert ages.min().item() - 1e-4 <= value <= ages.max().item() + 1e-4


def test_class_weights_take_read_only_arrays_without_a_warning():
    counts = np.array([100, 50, 10])
    counts.setflags(write=False)               # e.g. a label column shared with a dataset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert class_weights(counts).tolist() == [1.0, 2.0, 10.0]
