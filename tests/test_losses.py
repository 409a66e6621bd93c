"""losses.py: the closed-form cotangent dℓ/do equals autograd of the total loss for both losses
with masks and −1 targets; the total loss matches torch's own cross-entropy / MSE."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hypr_stream.losses import loss_cotangent, make_targets, step_losses, total_loss
from tests.oracles import assert_close_to_reference, default_dtype, random_targets, reference_loss


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(1, 8),
    B=st.integers(1, 4),
    K=st.integers(2, 5),
    loss=st.sampled_from(["ce", "mse"]),
    masked=st.booleans(),
)
def test_loss_cotangent_equals_autograd_of_total_loss(seed, T, B, K, loss, masked):
    g = torch.Generator().manual_seed(seed)
    outputs = 3 * torch.randn(T, B, K, generator=g)
    y, mask = random_targets(T, B, K, loss, masked, g)
    targets = make_targets(y, mask, K, outputs, loss)
    o = outputs.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(total_loss(o, targets), o)
    assert_close_to_reference({"o": loss_cotangent(outputs, targets)}, {"o": autograd}, 1e-12)
    # ... and the loss itself is torch's cross-entropy / MSE, summed over time, over B.
    assert float(total_loss(outputs, targets)) == pytest.approx(
        float(reference_loss(outputs, y, mask)), rel=1e-12
    )


def test_masked_and_missing_targets_contribute_nothing():
    outputs = torch.randn(4, 2, 3)
    y = torch.tensor([[0, -1], [1, 2], [-1, -1], [2, 0]])
    mask = torch.tensor([[True, True], [False, True], [True, True], [True, True]])
    targets = make_targets(y, mask, 3, outputs)
    per_step = step_losses(outputs, targets)
    keep = torch.tensor([[True, False], [False, True], [False, False], [True, True]])
    assert torch.equal(targets.mask, keep)
    assert torch.all(per_step[~keep] == 0) and torch.all(per_step[keep] > 0)
    assert torch.all(loss_cotangent(outputs, targets)[~keep] == 0)


def test_loss_is_summed_over_time_and_averaged_over_streams():
    outputs = torch.randn(6, 3, 2)
    y = torch.randn(6, 3, 2)
    targets = make_targets(y, None, 2, outputs)
    whole = total_loss(outputs, targets)
    halves = total_loss(outputs[:3], targets[:3]) + total_loss(outputs[3:], targets[3:])
    assert float(whole) == pytest.approx(float(halves), rel=1e-12)
    assert float(whole) == pytest.approx(float(((outputs - y) ** 2).mean(-1).sum() / 3), rel=1e-12)


def test_loss_is_inferred_from_target_dtype():
    x = torch.zeros(3, 2, 1)
    assert make_targets(torch.zeros(3, 2, dtype=torch.long), None, 4, x).loss == "ce"
    assert make_targets(torch.zeros(3, 2, 4), None, 4, x).loss == "mse"
