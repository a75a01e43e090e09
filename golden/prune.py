"""Deep Compression step 1: magnitude pruning with retraining.

Each Linear layer keeps exactly ``round(density * weights)`` weights of largest
magnitude (at least one). Pruning is iterative: the density falls
geometrically from 1 to the target over ``steps`` rounds, each followed by
retraining with the pruned weights held at zero (their gradients are masked
and they are re-zeroed after every optimiser step, so Adam's momentum cannot
revive them). Biases are never pruned.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HIDDEN_DENSITY", "OUTPUT_DENSITY", "default_densities", "check_density", "magnitude_mask",
           "prune_network"]

# Deep Compression kept 8 %, 9 % and 26 % of LeNet-300-100's weights: hidden
# layers tolerate much more pruning than the small output layer, whose every
# weight feeds a class score.
HIDDEN_DENSITY = 0.08
OUTPUT_DENSITY = 0.25


def check_density(density, what: str = "density") -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density <= 1.0:
        raise ValueError(f"{what} must be a number in range (0, 1] (fraction of weights kept), not {density!r}")
    return float(density)


def default_densities(n_layers: int, density=None) -> list:
    """Target density per layer: ``density`` for every layer when it is a number, its own value per layer
    when it is a sequence of ``n_layers`` numbers, else :data:`HIDDEN_DENSITY` for hidden layers and
    :data:`OUTPUT_DENSITY` for the last."""
    if isinstance(density, (list, tuple)):
        if len(density) != n_layers:
            raise ValueError(f"--density gives {len(density)} densities but the model has {n_layers} layers; "
                             f"give one density, or one per layer separated by commas")
        return [check_density(d, "--density") for d in density]
    if density is not None:
        return [check_density(density, "--density")] * n_layers
    return [HIDDEN_DENSITY] * (n_layers - 1) + [OUTPUT_DENSITY]


def magnitude_mask(weight, density: float):
    """Boolean mask keeping the ``max(1, round(density * n))`` largest-magnitude weights.

    Ties are broken by position (stable sort), so the kept count is exact.
    Accepts a numpy array or torch tensor; returns the same kind.
    """
    check_density(density)
    is_torch = not isinstance(weight, np.ndarray)
    w = weight.detach().cpu().numpy() if is_torch else weight
    flat = np.abs(w).ravel()
    keep = max(1, int(round(density * flat.size)))
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[:keep]] = True
    mask = mask.reshape(w.shape)
    if is_torch:
        import torch
        return torch.from_numpy(mask)
    return mask


def prune_network(model, linears, densities, X=None, y=None, *, steps: int = 3, epochs: int = 8,
                  lr: float = 1e-3, seed: int = 0, progress=None, loss: str = "cross_entropy") -> list:
    """Prune ``linears`` (``torch.nn.Linear`` modules of ``model``) to ``densities``, in place.

    With training data ``(X, y)`` the network is retrained for ``epochs`` after
    each of ``steps`` pruning rounds on ``loss`` (``"cross_entropy"``: ``y`` are
    class labels; ``"mse_distillation"``: ``y`` are the float model's outputs on
    ``X``; see :func:`eie.golden.models.train_classifier`); without it the
    weights are pruned once, by magnitude, with no retraining. Returns the boolean masks (torch tensors,
    one per layer); the pruned weights in ``model`` are exactly zero.
    """
    import torch
    from .models import train_classifier

    if len(densities) != len(linears):
        raise ValueError(f"got {len(densities)} densities for {len(linears)} layers")
    densities = [check_density(d) for d in densities]
    masks = [torch.ones_like(l.weight, dtype=torch.bool) for l in linears]

    def apply():
        with torch.no_grad():
            for lin, mask in zip(linears, masks):
                lin.weight.mul_(mask)

    hooks = []
    for lin, k in zip(linears, range(len(linears))):
        # Masked gradients: pruned weights get no update from the loss.
        hooks.append(lin.weight.register_hook(lambda g, k=k: g * masks[k]))
    try:
        rounds = steps if X is not None else 1
        for r in range(1, rounds + 1):
            for k, (lin, target) in enumerate(zip(linears, densities)):
                # Geometric schedule 1 -> target; the last round hits the target exactly.
                density = target ** (r / rounds)
                masks[k] = magnitude_mask(lin.weight, density)
            apply()
            if X is not None:
                train_classifier(model, X, y, epochs=epochs, lr=lr, seed=seed + r, after_step=apply,
                                 progress=progress, label=f"prune round {r}/{rounds}", loss=loss)
    finally:
        for h in hooks:
            h.remove()
    apply()
    return masks
