"""k-means weight sharing: code 0 reserved, linear initialisation, Lloyd fixed point, centroid gradients."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.golden.models import LinearSpec
from eie.golden.share import SharedLinear, kmeans_1d, share_layer, share_network
from eie.golden.models import set_threads

set_threads()   # one torch thread: the machine is shared by parallel tests


def test_linear_initialisation_spans_min_to_max():
    values = np.random.default_rng(0).standard_normal(500)
    centroids, labels = kmeans_1d(values, 15, iters=0)
    np.testing.assert_allclose(centroids, np.linspace(values.min(), values.max(), 15))
    # With no iteration, every value is labelled with its nearest initial centroid.
    np.testing.assert_array_equal(labels, np.abs(values[:, None] - centroids[None]).argmin(axis=1))


def test_converged_kmeans_is_a_lloyd_fixed_point():
    values = np.random.default_rng(1).laplace(size=2000)
    centroids, labels = kmeans_1d(values, 15)
    assert np.all(np.diff(centroids) > 0)
    np.testing.assert_array_equal(labels, np.abs(values[:, None] - centroids[None]).argmin(axis=1))
    for c in range(15):
        members = values[labels == c]
        if members.size:
            assert centroids[c] == pytest.approx(members.mean())


def test_well_separated_clusters_recovered():
    rng = np.random.default_rng(2)
    centres = np.array([-3.0, 0.5, 4.0])
    values = np.concatenate([c + 0.01 * rng.standard_normal(100) for c in centres])
    centroids, labels = kmeans_1d(values, 3)
    np.testing.assert_allclose(centroids, centres, atol=0.01)
    assert np.bincount(labels).tolist() == [100, 100, 100]


def test_share_layer_reserves_code_zero_for_pruned_weights():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((30, 20))
    mask = rng.random(w.shape) < 0.2
    layer = share_layer(w * mask, mask, np.zeros(30), index_bits=4, relu=True)
    assert layer.codebook.shape == (16,) and layer.codebook[0] == 0
    assert layer.codes.dtype == np.uint8
    np.testing.assert_array_equal(layer.codes != 0, mask)
    assert layer.codes.max() <= 15
    # Non-zero codes are numbered by increasing centroid, initialised between the survivors' min and max.
    assert np.all(np.diff(layer.codebook[1:]) >= 0)
    kept = w[mask]
    assert kept.min() <= layer.codebook[1] and layer.codebook[15] <= kept.max()
    # Each survivor maps to its nearest centroid.
    dist = np.abs(kept[:, None] - layer.codebook[1:][None])
    np.testing.assert_allclose(np.abs(kept - layer.codebook[layer.codes[mask]]), dist.min(axis=1))
    assert layer.density == pytest.approx(mask.mean())


def test_fewer_survivors_than_clusters():
    w = np.zeros((4, 4))
    w[0, 0], w[1, 2] = 0.5, -0.25
    layer = share_layer(w, w != 0, np.zeros(4), index_bits=4, relu=False)
    np.testing.assert_allclose(layer.weight, w)


def test_centroid_gradient_is_sum_over_cluster():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((6, 5))
    mask = rng.random(w.shape) < 0.6
    layer = share_layer(w * mask, mask, rng.standard_normal(6), index_bits=2, relu=False)
    shared = SharedLinear(layer)
    x = torch.tensor(rng.standard_normal((8, 5)), dtype=torch.float32)
    shared(x).pow(2).sum().backward()
    # Independent: gradient of the same dense weight in a plain Linear, summed per code.
    plain = nn.Linear(5, 6)
    with torch.no_grad():
        plain.weight.copy_(torch.tensor(layer.weight, dtype=torch.float32))
        plain.bias.copy_(torch.tensor(layer.bias, dtype=torch.float32))
    plain(x).pow(2).sum().backward()
    g = plain.weight.grad.numpy()
    expected = [g[layer.codes == c].sum() for c in range(1, 4)]
    np.testing.assert_allclose(shared.centroids.grad.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_fine_tuning_keeps_codes_and_mask():
    torch.manual_seed(0)
    lin = nn.Linear(10, 3)
    with torch.no_grad():
        lin.weight[lin.weight.abs() < 0.15] = 0
    mask = (lin.weight != 0).numpy()
    rng = np.random.default_rng(5)
    X = rng.standard_normal((64, 10)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    layers, model = share_network([LinearSpec(0, lin, False)], [mask], index_bits=3, X=None)
    codes_before = layers[0].codes.copy()
    tuned, _ = share_network([LinearSpec(0, lin, False)], [mask], index_bits=3, X=X, y=y, epochs=3, lr=1e-2)
    np.testing.assert_array_equal(tuned[0].codes, codes_before)
    assert tuned[0].codebook[0] == 0
    assert not np.allclose(tuned[0].codebook, layers[0].codebook)   # the centroids did move


@pytest.mark.parametrize("k", [0, -3])
def test_kmeans_needs_at_least_one_cluster(k):
    with pytest.raises(ValueError, match=rf"k-means cluster count must be at least 1, not {k}"):
        kmeans_1d(np.array([0.5, -0.25, 1.0]), k)


# ---- initialisations (issue 15): linear, density, quantile, kmeans++, auto ----------------------------------

def _outlier_layer(seed=0, shape=(96, 384)):
    """A transformer-FFN-like layer: weights ~N(0, 0.06), one outlier 7.9 (the issue's case)."""
    rng = np.random.default_rng(seed)
    w = 0.06 * rng.standard_normal(shape)
    w[3, 5] = 7.9
    return w


def test_outlier_layer_auto_uses_the_codes_linear_does_not():
    """One outlier stretches linear's range: few codes in use, every negative weight on one code. auto must
    use (nearly) all 15 codes, spread the negative weights, and reconstruct the weights far better."""
    w = _outlier_layer()
    mask = np.ones(w.shape, dtype=bool)
    linear = share_layer(w, mask, np.zeros(w.shape[0]), index_bits=4, relu=True, init="linear")
    auto = share_layer(w, mask, np.zeros(w.shape[0]), index_bits=4, relu=True, init="auto")
    used = lambda layer: len(np.unique(layer.codes[mask]))                   # noqa: E731
    negative_codes = lambda layer: len(np.unique(layer.codes[w < 0]))       # noqa: E731
    assert used(linear) <= 5 and negative_codes(linear) == 1
    assert used(auto) >= 14 and negative_codes(auto) >= 5
    assert auto.codes_used == used(auto) and linear.codes_used == used(linear)
    mse = lambda layer: np.mean((layer.weight - w) ** 2)                    # noqa: E731
    assert mse(auto) < mse(linear) / 10
    assert auto.init != "linear" and linear.init == "linear"
    # The outlier keeps a code of its own (its value is represented).
    assert auto.weight[3, 5] == pytest.approx(7.9)


@pytest.mark.parametrize("init", ["density", "quantile", "kmeans++"])
def test_every_other_init_survives_the_outlier(init):
    w = _outlier_layer(1)
    layer = share_layer(w, np.ones(w.shape, bool), np.zeros(w.shape[0]), index_bits=4, relu=False, init=init)
    assert layer.codes_used >= 14 and layer.init == init


def test_initial_centroids_of_each_init():
    """iters=0: the initial centroids themselves, from their definitions."""
    values = np.random.default_rng(6).laplace(size=1001)
    s = np.sort(values)
    c, _ = kmeans_1d(values, 5, iters=0, init="density")        # CDF levels 0, 1/4, .., 1
    np.testing.assert_allclose(c, [s[0], s[250], s[500], s[750], s[1000]])
    c, _ = kmeans_1d(values, 5, iters=0, init="quantile")       # mid-quantiles (i + 1/2) / k
    np.testing.assert_allclose(c, np.quantile(values, [0.1, 0.3, 0.5, 0.7, 0.9]))
    c, _ = kmeans_1d(values, 5, iters=0, init="kmeans++", seed=3)
    assert set(c) <= set(values) and len(set(c)) == 5 and np.all(np.diff(c) > 0)
    np.testing.assert_array_equal(c, kmeans_1d(values, 5, iters=0, init="kmeans++", seed=3)[0])  # seeded


def test_auto_keeps_the_init_of_least_weight_error():
    rng = np.random.default_rng(7)
    w = np.concatenate([0.05 * rng.standard_t(2, 3000), [4.0, -3.0]]).reshape(-1, 2)
    mask = np.ones(w.shape, bool)
    errors = {}
    for init in ("linear", "density", "quantile", "kmeans++"):
        layer = share_layer(w, mask, np.zeros(len(w)), index_bits=3, relu=False, init=init)
        errors[init] = float(np.mean((layer.weight - w) ** 2))
    auto = share_layer(w, mask, np.zeros(len(w)), index_bits=3, relu=False, init="auto")
    assert auto.init == min(errors, key=errors.get)
    assert np.mean((auto.weight - w) ** 2) == pytest.approx(min(errors.values()))
    assert auto.init_mse == pytest.approx(errors)


def test_unknown_init_refused():
    with pytest.raises(ValueError, match=r"--share-init must be one of linear, density, quantile, kmeans\+\+, "
                                         r"auto, not 'cdf'"):
        share_layer(np.ones((2, 2)), np.ones((2, 2), bool), np.zeros(2), index_bits=2, relu=False, init="cdf")
