"""SAM's two steps against a hand-derived update."""
import math

import pytest
import torch

from facelab.errors import InvalidInputError
from facelab.sam import SAM


def quadratic(w):
    # f(w) = 0.5 * (1 * w0^2 + 2 * w1^2); gradient (w0, 2 * w1)
    return 0.5 * (w[0] ** 2 + 2 * w[1] ** 2)


def test_sam_with_sgd_matches_hand_derivation():
    # w = (3, 4): g = (3, 8), ||g|| = sqrt(73)
    # rho = 0.5: e = rho * g / ||g|| = (0.1755617208, 0.4681645888)
    # w_adv = w + e = (3.1755617208, 4.4681645888); g_adv = (3.1755617208, 8.9363291776)
    # SGD lr 0.1 from w (not from w_adv): w_new = (3, 4) - 0.1 * g_adv = (2.6824438279, 3.1063670822)
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=0.5, lr=0.1)
    quadratic(w).backward()
    opt.first_step(zero_grad=True)
    assert w.detach().tolist() == pytest.approx([3.1755617208, 4.4681645888], abs=1e-9)
    quadratic(w).backward()
    assert w.grad.tolist() == pytest.approx([3.1755617208, 8.9363291776], abs=1e-9)
    opt.second_step(zero_grad=True)
    assert w.detach().tolist() == pytest.approx([2.6824438279, 3.1063670822], abs=1e-9)
    assert w.grad is None or float(w.grad.abs().sum()) == 0.0


def test_step_with_closure_equals_the_two_steps():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=0.5, lr=0.1)

    def closure():
        loss = quadratic(w)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(0.5 * (9 + 32))  # loss at the original w
    assert w.detach().tolist() == pytest.approx([2.6824438279, 3.1063670822], abs=1e-9)
    with pytest.raises(InvalidInputError, match="closure"):
        opt.step()


def test_rho_zero_is_the_base_optimizer():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=0.0, lr=0.1)
    quadratic(w).backward()
    opt.first_step(zero_grad=True)
    quadratic(w).backward()
    opt.second_step()
    assert w.detach().tolist() == pytest.approx([3 - 0.3, 4 - 0.8])


def test_sam_wraps_adam_and_saves_its_state():
    # Adam's first step moves every weight by lr * m_hat / (sqrt(v_hat) + eps) = lr * sign(g_adv)
    w = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = SAM([w], torch.optim.Adam, rho=0.5, lr=0.01)
    quadratic(w).backward()
    opt.first_step(zero_grad=True)
    quadratic(w).backward()
    opt.second_step(zero_grad=True)
    assert w.detach().tolist() == pytest.approx([3 - 0.01, -4 + 0.01], abs=1e-7)
    state = opt.state_dict()
    assert "exp_avg" in state["state"][0]  # Adam's moments are part of the saved state
    w2 = torch.tensor(w.detach().tolist(), dtype=torch.float64, requires_grad=True)
    opt2 = SAM([w2], torch.optim.Adam, rho=0.5, lr=0.01)
    opt2.load_state_dict(state)
    assert torch.equal(opt2.base_optimizer.state[w2]["exp_avg"], opt.base_optimizer.state[w]["exp_avg"])
    assert opt2.param_groups is opt2.base_optimizer.param_groups


def test_gradient_norm_is_over_all_parameters():
    a = torch.tensor([3.0], requires_grad=True)
    b = torch.tensor([4.0], requires_grad=True)
    opt = SAM([{"params": [a]}, {"params": [b]}], torch.optim.SGD, rho=1.0, lr=0.1)
    (0.5 * a ** 2 + 0.5 * b ** 2).sum().backward()  # g = (3, 4), ||g|| = 5
    opt.first_step()
    assert a.item() == pytest.approx(3 + 3 / 5) and b.item() == pytest.approx(4 + 4 / 5)
    assert math.isclose(opt.param_groups[0]["lr"], 0.1)


def test_negative_rho_rejected():
    with pytest.raises(InvalidInputError):
        SAM([torch.zeros(1, requires_grad=True)], torch.optim.SGD, rho=-1, lr=0.1)
