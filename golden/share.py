"""Deep Compression step 2: per-layer weight sharing by k-means, and centroid fine-tuning.

Every layer gets its own codebook of ``2**index_bits`` float values. Code 0 is
reserved for the value 0: pruned weights (and the encoder's padding entries)
use it, so it is never a cluster. The surviving (non-zero) weights are
clustered into ``2**index_bits - 1`` clusters by one-dimensional k-means with
linear initialisation (centroids evenly spaced between the smallest and the
largest surviving weight, which Deep Compression found best because it keeps
the few large weights represented). Clusters are numbered 1.. in increasing
centroid order.

Fine-tuning keeps every weight's code (and so the pruning mask) fixed and
trains the centroids: a weight is ``codebook[code]``, so autograd sums the
gradients of all weights of a cluster into its centroid. Biases are trained
alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SharedLayer", "kmeans_1d", "share_layer", "SharedLinear", "shared_model", "share_network"]


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

    @property
    def weight(self) -> np.ndarray:
        return self.codebook[self.codes]

    @property
    def density(self) -> float:
        return float(np.count_nonzero(self.codes)) / self.codes.size


def kmeans_1d(values, k: int, *, iters: int = 100):
    """One-dimensional k-means with linear initialisation.

    Returns ``(centroids, labels)``: ``centroids`` (k,) float64 in increasing
    order, initialised evenly spaced from ``min(values)`` to ``max(values)``;
    ``labels`` (n,) the index of the nearest centroid of each value. A cluster
    that loses all its members keeps its last centroid (it costs nothing: its
    code is simply unused). Stops when no assignment changes.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if k < 1:
        raise ValueError(f"k-means cluster count must be at least 1, not {k!r}")
    if values.size == 0:
        return np.linspace(0.0, 0.0, k), np.zeros(0, dtype=np.int64)
    centroids = np.linspace(values.min(), values.max(), k)
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


def _nearest(values, centroids):
    # Centroids are sorted: nearest = compare against the midpoints.
    mids = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mids, values, side="left").astype(np.int64)


def share_layer(weight, mask, bias, *, index_bits: int, relu: bool, name: str = "") -> SharedLayer:
    """Cluster the surviving weights (``mask``) of one layer into a codebook."""
    weight = np.asarray(weight, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool) & (weight != 0)
    k = (1 << index_bits) - 1
    centroids, labels = kmeans_1d(weight[mask], k)
    codebook = np.zeros(1 << index_bits, dtype=np.float64)
    codebook[1:] = centroids
    codes = np.zeros(weight.shape, dtype=np.uint8)
    codes[mask] = labels + 1
    return SharedLayer(codes, codebook, np.asarray(bias, dtype=np.float64).copy(), relu, name)


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
                  seed: int = 0, progress=None):
    """Share the weights of pruned layers and fine-tune the centroids.

    ``specs`` are :class:`~eie.golden.models.LinearSpec` (pruned Linears),
    ``masks`` their pruning masks. Without ``(X, y)`` the centroids stay as
    k-means left them. Returns ``(layers, model)``: the :class:`SharedLayer`
    list and the float Sequential that computes it.
    """
    layers = []
    for k, (spec, mask) in enumerate(zip(specs, masks)):
        lin = spec.linear
        bias = lin.bias.detach().numpy() if lin.bias is not None else np.zeros(lin.out_features)
        layers.append(share_layer(lin.weight.detach().numpy(), np.asarray(mask), bias,
                                  index_bits=index_bits, relu=spec.relu, name=f"fc{k + 1}"))
    model = shared_model(layers)
    if X is not None and epochs > 0:
        from .models import train_classifier
        train_classifier(model, X, y, epochs=epochs, lr=lr, seed=seed, progress=progress,
                         label="centroid fine-tuning")
    # Read the trained centroids and biases back.
    shared = [m for m in model if hasattr(m, "centroids")]
    for layer, mod in zip(layers, shared):
        layer.codebook[1:] = mod.centroids.detach().numpy().astype(np.float64)
        layer.bias = mod.bias.detach().numpy().astype(np.float64)
    return layers, model
