"""Deep Compression step 2: per-layer weight sharing by k-means, and centroid fine-tuning.

Every layer gets its own codebook of ``2**index_bits`` float values. Code 0 is
reserved for the value 0: pruned weights (and the encoder's padding entries)
use it, so it is never a cluster. The surviving (non-zero) weights are
clustered into ``2**index_bits - 1`` clusters by one-dimensional k-means
(Lloyd's iterations). Clusters are numbered 1.. in increasing centroid order.

Initialisation (:data:`INITS`; ``init`` of :func:`kmeans_1d`, ``--share-init``):

``linear``
    Centroids evenly spaced from the smallest to the largest surviving weight
    (Deep Compression's choice: it keeps the few large weights represented).
    On real weight statistics it can fail badly: one outlier (say 7.9 where
    99.9 % of the weights lie within 0.18) stretches the range so that only a
    few centroids fall in the bulk, and Lloyd's iterations never move the
    empty ones back.
``density``
    The CDF of the weights spaced evenly on its y axis (Deep Compression's
    "density-based" initialisation): centroid ``i`` at the ``i / (k - 1)``
    quantile, so the smallest and the largest weight (an outlier) keep one
    each and the rest follow the density.
``quantile``
    Centroid ``i`` at the ``(i + 1/2) / k`` quantile (equal-mass bins).
``kmeans++``
    k-means++ seeding (each next centroid drawn with probability proportional
    to the squared distance to the nearest chosen one), seeded.
``auto``
    Every one of the above; the layer keeps the codebook with the smallest
    **weight reconstruction error**: the mean squared difference between the
    surviving weights and their centroids (ties keep the earlier init, linear
    first). That is what k-means minimises, needs no data, and is what the
    centroid fine-tuning starts from; the output error is measured after the
    whole network is shared (the report's ``fidelity``).

Fine-tuning keeps every weight's code (and so the pruning mask) fixed and
trains the centroids: a weight is ``codebook[code]``, so autograd sums the
gradients of all weights of a cluster into its centroid. Biases are trained
alongside, on the pipeline's objective (cross-entropy on labels, or MSE
distillation from the float model on unlabelled inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["INITS", "SharedLayer", "kmeans_1d", "check_init", "weight_mse", "share_layer", "SharedLinear", "shared_model", "share_network"]


@dataclass
class SharedLayer:
    """A pruned, weight-shared layer in float.

    codes : (out, in) uint8, 0 = zero weight
    codebook : (2**index_bits,) float64, ``codebook[0] == 0``
    bias : (out,) float64
    """
    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    relu: bool
    name: str = ""
    init: str = ""               # the k-means initialisation chosen (see INITS)
    init_mse: dict = field(default_factory=dict)   # weight reconstruction MSE of every init tried

    @property
    def codes_used(self) -> int:
        """Distinct non-zero codes in use."""
        return int(len(np.unique(self.codes[self.codes != 0])))

    @property
    def weight(self) -> np.ndarray:
        return self.codebook[self.codes]

    @property
    def density(self) -> float:
        return float(np.count_nonzero(self.codes)) / self.codes.size


INITS = ("linear", "density", "quantile", "kmeans++")


def check_init(init: str, *, auto: bool = True) -> str:
    """``init`` when it names a k-means initialisation (or ``auto``), else a ValueError naming the choices."""
    allowed = INITS + (("auto",) if auto else ())
    if init not in allowed:
        raise ValueError(f"--share-init must be one of {', '.join(allowed)}, not {init!r}")
    return init


def _initial_centroids(values, k: int, init: str, seed: int):
    """The ``k`` starting centroids of ``init`` (sorted) for the 1-D ``values`` (non-empty)."""
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, np.linspace(0.0, 1.0, k))
    if init == "quantile":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    # k-means++: first centroid uniform, then D^2 sampling.
    rng = np.random.default_rng(seed)
    chosen = [values[rng.integers(values.size)]]
    d2 = (values - chosen[0]) ** 2
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:                       # fewer distinct values than clusters
            chosen.append(chosen[-1])
            continue
        c = values[rng.choice(values.size, p=d2 / total)]
        chosen.append(c)
        d2 = np.minimum(d2, (values - c) ** 2)
    return np.sort(np.asarray(chosen, dtype=np.float64))


def kmeans_1d(values, k: int, *, iters: int = 100, init: str = "linear", seed: int = 0):
    """One-dimensional k-means from the initialisation ``init`` (:data:`INITS`).

    Returns ``(centroids, labels)``: ``centroids`` (k,) float64 in increasing
    order; ``labels`` (n,) the index of the nearest centroid of each value. A
    cluster that loses all its members keeps its last centroid (it costs
    nothing: its code is simply unused). Stops when no assignment changes.
    ``seed`` seeds ``kmeans++``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if k < 1:
        raise ValueError(f"k-means cluster count must be at least 1, not {k!r}")
    check_init(init, auto=False)
    if values.size == 0:
        return np.linspace(0.0, 0.0, k), np.zeros(0, dtype=np.int64)
    centroids = _initial_centroids(values, k, init, seed)
    labels = None
    for _ in range(iters):
        new = _nearest(values, centroids)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        centroids = centroids.copy()
        centroids[filled] = sums[filled] / counts[filled]
        # Lloyd steps on sorted 1-D data keep the order; sort anyway for safety.
        order = np.argsort(centroids, kind="stable")
        if np.any(order != np.arange(k)):
            centroids = centroids[order]
            labels = None
    return centroids, _nearest(values, centroids)


def weight_mse(values, centroids, labels) -> float:
    """Mean squared difference between ``values`` and their centroids (0 for no values)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return float(np.mean((values - centroids[labels]) ** 2)) if values.size else 0.0


def _nearest(values, centroids):
    # Centroids are sorted: nearest = compare against the midpoints.
    mids = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mids, values, side="left").astype(np.int64)


def share_layer(weight, mask, bias, *, index_bits: int, relu: bool, name: str = "", init: str = "linear",
                seed: int = 0) -> SharedLayer:
    """Cluster the surviving weights (``mask``) of one layer into a codebook.

    ``init`` is one of :data:`INITS` or ``"auto"`` (try them all, keep the one of
    least weight reconstruction MSE; see the module docstring). The layer's
    ``init`` says which was used and ``init_mse`` the MSE of every init tried.
    """
    check_init(init)
    weight = np.asarray(weight, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool) & (weight != 0)
    k = (1 << index_bits) - 1
    values = weight[mask]
    best, tried = None, {}
    for candidate in (INITS if init == "auto" else (init,)):
        centroids, labels = kmeans_1d(values, k, init=candidate, seed=seed)
        tried[candidate] = weight_mse(values, centroids, labels)
        if best is None or tried[candidate] < tried[best[0]]:
            best = (candidate, centroids, labels)
    chosen, centroids, labels = best
    codebook = np.zeros(1 << index_bits, dtype=np.float64)
    codebook[1:] = centroids
    codes = np.zeros(weight.shape, dtype=np.uint8)
    codes[mask] = labels + 1
    return SharedLayer(codes, codebook, np.asarray(bias, dtype=np.float64).copy(), relu, name, chosen, tried)


def _shared_linear_class():
    import torch
    import torch.nn as nn

    class SharedLinear(nn.Module):
        """A Linear whose weight is ``cat([0], centroids)[codes]``; trains centroids and bias."""

        def __init__(self, layer: SharedLayer):
            super().__init__()
            self.centroids = nn.Parameter(torch.tensor(layer.codebook[1:], dtype=torch.float32))
            self.bias = nn.Parameter(torch.tensor(layer.bias, dtype=torch.float32))
            self.register_buffer("codes", torch.tensor(layer.codes.astype(np.int64)))

        def weight(self):
            table = torch.cat([self.centroids.new_zeros(1), self.centroids])
            return table[self.codes]

        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight(), self.bias)

    return SharedLinear


def SharedLinear(layer: SharedLayer):  # noqa: N802 (a factory so torch is imported lazily)
    return _shared_linear_class()(layer)


def shared_model(layers):
    """A float ``torch.nn.Sequential`` computing the shared network (for training and accuracy)."""
    import torch.nn as nn
    modules = []
    for layer in layers:
        modules.append(SharedLinear(layer))
        if layer.relu:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def share_network(specs, masks, *, index_bits: int, X=None, y=None, epochs: int = 8, lr: float = 2e-4,
                  seed: int = 0, progress=None, init: str = "linear", loss: str = "cross_entropy"):
    """Share the weights of pruned layers and fine-tune the centroids.

    ``specs`` are :class:`~eie.golden.models.LinearSpec` (pruned Linears),
    ``masks`` their pruning masks, ``init`` the k-means initialisation (see
    :func:`share_layer`). Without ``(X, y)`` the centroids stay as k-means left
    them; with it they are fine-tuned on ``loss`` (``y``: class labels for
    ``"cross_entropy"``, the float model's outputs for ``"mse_distillation"``).
    Returns ``(layers, model)``: the :class:`SharedLayer` list and the float
    Sequential that computes it.
    """
    layers = []
    for k, (spec, mask) in enumerate(zip(specs, masks)):
        lin = spec.linear
        bias = lin.bias.detach().numpy() if lin.bias is not None else np.zeros(lin.out_features)
        layers.append(share_layer(lin.weight.detach().numpy(), np.asarray(mask), bias, index_bits=index_bits,
                                  relu=spec.relu, name=f"fc{k + 1}", init=init, seed=seed + k))
    model = shared_model(layers)
    if X is not None and epochs > 0:
        from .models import train_classifier
        train_classifier(model, X, y, epochs=epochs, lr=lr, seed=seed, progress=progress,
                         label="centroid fine-tuning", loss=loss)
    # Read the trained centroids and biases back.
    shared = [m for m in model if hasattr(m, "centroids")]
    for layer, mod in zip(layers, shared):
        layer.codebook[1:] = mod.centroids.detach().numpy().astype(np.float64)
        layer.bias = mod.bias.detach().numpy().astype(np.float64)
    return layers, model
