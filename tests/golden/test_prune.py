"""Magnitude pruning: exact densities, largest weights kept, pruned weights stay zero through retraining."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.golden.prune import (HIDDEN_DENSITY, OUTPUT_DENSITY, check_density, default_densities, magnitude_mask,
                              prune_network)
from eie.golden.models import set_threads

set_threads()   # one torch thread: the machine is shared by parallel tests


@pytest.mark.parametrize("density", [0.01, 0.08, 0.25, 0.5, 0.999, 1.0])
@pytest.mark.parametrize("shape", [(300, 64), (7, 13), (1, 1)])
def test_mask_keeps_exact_count_of_largest(density, shape):
    w = np.random.default_rng(1).standard_normal(shape)
    mask = magnitude_mask(w, density)
    n = w.size
    assert mask.sum() == max(1, round(density * n))
    if mask.sum() < n:
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


def test_mask_exact_with_ties_and_torch_tensor():
    w = torch.ones(10, 10)
    mask = magnitude_mask(w, 0.37)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
    assert int(mask.sum()) == 37


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, True, "0.1", None])
def test_density_out_of_range_refused(bad):
    with pytest.raises(ValueError, match=r"density must be a number in range \(0, 1\]"):
        check_density(bad)


def test_default_densities():
    assert default_densities(3) == [HIDDEN_DENSITY, HIDDEN_DENSITY, OUTPUT_DENSITY]
    assert default_densities(1) == [OUTPUT_DENSITY]
    assert default_densities(2, 0.3) == [0.3, 0.3]
    with pytest.raises(ValueError, match="--density"):
        default_densities(2, 2.0)
    assert default_densities(3, [0.06, 0.06, 0.2]) == [0.06, 0.06, 0.2]      # one per layer
    with pytest.raises(ValueError, match="--density gives 2 densities but the model has 3 layers"):
        default_densities(3, [0.1, 0.2])
    with pytest.raises(ValueError, match="--density"):
        default_densities(2, (0.1, 0.0))


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))


def test_one_shot_without_data_keeps_survivors_unchanged():
    net = _net()
    before = [l.weight.detach().clone() for l in (net[0], net[2])]
    masks = prune_network(net, [net[0], net[2]], [0.1, 0.5])
    for lin, mask, w0, d in zip((net[0], net[2]), masks, before, (0.1, 0.5)):
        assert int(mask.sum()) == round(d * w0.numel())
        assert torch.equal(lin.weight[mask], w0[mask])
        assert torch.all(lin.weight[~mask] == 0)
        assert torch.equal(mask, magnitude_mask(w0, d))


def test_iterative_retraining_keeps_pruned_weights_zero_and_learns():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    net = _net()
    masks = prune_network(net, [net[0], net[2]], [0.2, 0.5], X, y, steps=2, epochs=3, lr=1e-2)
    for lin, mask, d in zip((net[0], net[2]), masks, (0.2, 0.5)):
        assert int((lin.weight != 0).sum()) == round(d * lin.weight.numel())   # exact final density
        assert torch.all(lin.weight[~mask] == 0)
    acc = (net(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
    assert acc > 0.6   # retraining learnt the 4-class task (chance is 0.25)
    assert net[0].weight.grad is not None and torch.all(net[0].weight.grad[~masks[0]] == 0)  # gradients were masked


def test_density_count_mismatch_refused():
    net = _net()
    with pytest.raises(ValueError, match="2 layers"):
        prune_network(net, [net[0], net[2]], [0.1])
