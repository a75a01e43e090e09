"""A fidelity target: per-layer densities chosen by sensitivity (``eie compress --max-error E``).

Deep Compression chose each layer's density from its *sensitivity curve*:
prune one layer at a time, measure the network's error, keep the others dense.
:func:`compress_within` does the same, then verifies the choice on the whole
compressed pipeline and backs off:

1. **Sensitivity** (:func:`sensitivity_table`): for every layer and every
   candidate density in :data:`CANDIDATE_DENSITIES`, that layer alone is pruned
   by magnitude and weight-shared (k-means, the run's ``--share-init``), without
   retraining, and the network's error is measured (below) on the sensitivity
   inputs (:func:`sensitivity_inputs`). The curves are made monotone (the error
   at a density is the worst at it or any denser one).
2. **Choice** (:func:`choose_densities`): from every layer dense, lower the
   density of the layer that saves the most weights per unit of added error,
   one candidate step at a time, while the *sum* of the layers' errors stays
   within a budget (first the target itself).
3. **Verification**: the whole pipeline runs at those densities (retraining,
   sharing, fixed point) and the error of the fixed-point network is measured
   on the held-out inputs of the report's ``fidelity``. Above the target, the
   budget is cut (by ``target / achieved``, at least by 0.7) and the pipeline
   runs again; under 90 % of it, the budget is raised (by ``target /
   achieved``, at most 4x) to try lower densities; once one budget met the
   target and another did not, the next is their geometric mean. It stops
   when a budget gives densities already tried, or after ``max_tries`` runs;
   the result is the run of highest compression that met the target (or,
   when none did, the last, with ``met: false``).

The error (``metric``):

``rel_l2`` (no labels: ``--inputs``, or no data)
    ``||y - y_float|| / ||y_float||`` of the outputs, as :mod:`.fidelity`.
``accuracy_drop`` (labelled data: ``--data``, digits-mlp)
    The float model's top-1 accuracy minus the network's, as a fraction
    (``0.01`` is one point); negative drops count as 0.

Without retraining, the sensitivity overestimates the error of a retrained
layer, so the first choice is conservative when there are data to retrain
on; raising the budget recovers some of that.
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["CANDIDATE_DENSITIES", "METRICS", "network_error", "sensitivity_inputs", "sensitivity_table",
           "choose_densities", "achieved_error", "check_max_error", "compress_within"]

CANDIDATE_DENSITIES = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
METRICS = ("rel_l2", "accuracy_drop")
# Labelled sensitivity inputs: a seeded sample of the training split, at most this many.
_SENSITIVITY_SAMPLES = 2048
# Unlabelled and no --inputs: seeded standard-normal inputs (as the no-data calibration).
_RANDOM_SAMPLES = 512


def check_max_error(max_error) -> float:
    """``max_error`` as a float when it is a number > 0, else a ValueError naming the option and the range."""
    if isinstance(max_error, bool) or not isinstance(max_error, (int, float)) or not max_error > 0 \
            or not np.isfinite(max_error):
        raise ValueError(f"--max-error must be a number > 0 (relative L2 error of the outputs without labels, "
                         f"accuracy drop as a fraction with labels: 0.01 = one point), not {max_error!r}")
    return float(max_error)


def network_error(reference, outputs, labels=None) -> float:
    """The error of ``outputs`` against the float ``reference`` outputs: accuracy drop with ``labels``, else
    relative L2 (see the module docstring)."""
    r = np.asarray(reference, dtype=np.float64)
    a = np.asarray(outputs, dtype=np.float64)
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        return max(0.0, float(np.mean(r.argmax(1) == y)) - float(np.mean(a.argmax(1) == y)))
    signal = float(np.sum(r * r))
    if signal == 0.0:
        raise ValueError("the float model's outputs are all zero on the sensitivity inputs: a relative error "
                         "is undefined; give real inputs with --inputs, or labelled --data")
    return float(np.sqrt(np.sum((a - r) ** 2) / signal))


def sensitivity_inputs(X_train, y_train, X_inputs, in_len, seed: int):
    """The inputs the sensitivity is measured on: ``(X, labels or None, source)`` (``in_len``: an int, or
    the shape of one input such as ``(time, features)``).

    Labelled data: a seeded sample of at most 2048 training inputs (never the
    test split, on which the target is verified); ``--inputs``: the inputs not
    held out; neither: 512 seeded standard-normal inputs.
    """
    if X_train is not None:
        n = min(len(X_train), _SENSITIVITY_SAMPLES)
        pick = np.sort(np.random.default_rng([seed, 3]).permutation(len(X_train))[:n])
        return (np.asarray(X_train, np.float32)[pick], np.asarray(y_train)[pick],
                f"{n} training inputs (labelled: accuracy drop)")
    if X_inputs is not None:
        return np.asarray(X_inputs, np.float32), None, f"the {len(X_inputs)} --inputs not held out (relative L2)"
    shape = (in_len,) if isinstance(in_len, (int, np.integer)) else tuple(in_len)     # (time, features) too
    X = np.random.default_rng([seed, 2]).standard_normal((_RANDOM_SAMPLES, *shape)).astype(np.float32)
    return X, None, f"{_RANDOM_SAMPLES} seeded standard-normal inputs (relative L2; not representative)"


def sensitivity_table(model, specs, X, labels=None, *, index_bits: int, share_init: str = "auto", seed: int = 0,
                      densities=CANDIDATE_DENSITIES) -> dict:
    """Each layer's error curve: that layer alone pruned to each density and weight-shared, no retraining.

    ``model`` is the float ``nn.Sequential`` (left unchanged), ``specs`` its
    :class:`~eie.golden.models.LinearSpec` list. Returns ``{"metric",
    "densities", "layers": [{"name", "weights", "errors", "monotone"}]}``:
    ``errors[i]`` at ``densities[i]`` as measured, ``monotone[i]`` the largest
    error at ``densities[i]`` or denser (what :func:`choose_densities` uses).
    """
    import torch

    from .fidelity import float_outputs
    from .prune import magnitude_mask
    from .share import share_layer

    densities = sorted(float(d) for d in densities)
    work = copy.deepcopy(model)
    ref = float_outputs(model, X)
    rows = []
    names = {id(m): n for n, m in model.named_modules()}      # the same Linear in the copy, by its name
    for k, spec in enumerate(specs):
        lin = work.get_submodule(names[id(spec.linear)])
        original = lin.weight.detach().clone()
        weight = original.double().numpy()
        bias = np.zeros(lin.out_features) if lin.bias is None else lin.bias.detach().double().numpy()
        errors = []
        for d in densities:
            mask = magnitude_mask(weight, d)
            shared = share_layer(weight * mask, mask, bias, index_bits=index_bits, relu=spec.relu,
                                 init=share_init, seed=seed + k)
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(shared.weight, dtype=lin.weight.dtype))
            errors.append(network_error(ref, float_outputs(work, X), labels))
        with torch.no_grad():
            lin.weight.copy_(original)
        monotone = [max(errors[i:]) for i in range(len(errors))]
        rows.append({"name": f"fc{k + 1}", "weights": int(weight.size), "errors": errors, "monotone": monotone})
    return {"metric": "accuracy_drop" if labels is not None else "rel_l2", "densities": densities, "layers": rows}


def choose_densities(table: dict, budget: float):
    """The lowest densities (candidates of ``table``) whose summed per-layer errors stay within ``budget``.

    Greedy: from every layer at its densest candidate, repeatedly take the one
    step down (in some layer) that saves the most weights per unit of added
    error (free steps first) while the sum stays within ``budget``. Returns
    ``(densities, predicted)``, ``predicted`` the summed error.
    """
    dens = table["densities"]
    layers = table["layers"]
    at = [len(dens) - 1] * len(layers)
    predicted = sum(row["monotone"][-1] for row in layers)
    while True:
        best = None
        for k, row in enumerate(layers):
            i = at[k]
            if i == 0:
                continue
            added = row["monotone"][i - 1] - row["monotone"][i]
            if added > 0 and predicted + added > budget:
                continue
            saved = row["weights"] * (dens[i] - dens[i - 1])
            score = (float("inf"), saved) if added <= 0 else (saved / added, saved)
            if best is None or score > best[0]:
                best = (score, k, added)
        if best is None:
            break
        _, k, added = best
        at[k] -= 1
        predicted += added
    return [dens[i] for i in at], predicted


def achieved_error(report: dict, metric: str) -> float:
    """The error of a :func:`~eie.golden.pipeline.compress` report's fixed-point network (held-out inputs)."""
    if metric == "accuracy_drop":
        acc = report["accuracy"]
        return max(0.0, acc["float"] - acc["fixed_point"])
    rel = report["fidelity"]["fixed_point"]["rel_l2"]
    return float("inf") if rel is None else float(rel)


def compress_within(run, max_error: float, *, max_tries: int = 4, progress=None):
    """Compress at the lowest densities meeting ``max_error`` (the module docstring's steps 1-3).

    ``run(choose)`` runs the whole pipeline once: it calls ``choose(float_model,
    specs, X_train, y_train, X_inputs, in_len, seed, index_bits, share_init)``
    after loading the model and data, prunes to the densities it returns, and
    returns the :class:`~eie.golden.pipeline.Compressed` result. The result
    returned has ``report["max_error"]``: ``target``, ``metric``, ``achieved``,
    ``met``, ``densities``, ``ratio`` (compression in the EIE format),
    ``sensitivity`` (the table and its inputs) and ``attempts`` (each run's
    densities, summed predicted error, achieved error, ratio).
    """
    progress = progress or (lambda msg: None)
    target = check_max_error(max_error)
    state = {"budget": target}

    def choose(float_model, specs, X_train, y_train, X_inputs, in_len, seed, index_bits, share_init):
        if "table" not in state:
            X, labels, source = sensitivity_inputs(X_train, y_train, X_inputs, in_len, seed)
            progress(f"sensitivity: {len(specs)} layers x {len(CANDIDATE_DENSITIES)} densities on {source}")
            state["table"] = sensitivity_table(float_model, specs, X, labels, index_bits=index_bits,
                                               share_init=share_init, seed=seed)
            state["table"]["inputs"] = source
        dens, predicted = choose_densities(state["table"], state["budget"])
        state["predicted"] = predicted
        progress(f"--max-error {target:g}: budget {state['budget']:.4g}, densities "
                 f"{', '.join(f'{d:.0%}' for d in dens)} (predicted error {predicted:.4g})")
        return dens

    attempts, results = [], []
    met_budget = failed_budget = None          # the bracket: largest budget met, smallest budget over
    while len(attempts) < max_tries:
        result = run(choose)
        metric = state["table"]["metric"]
        achieved = achieved_error(result.report, metric)
        dens = list(result.report["densities"])
        ok = achieved <= target
        attempts.append({"densities": dens, "budget": state["budget"], "predicted": state["predicted"],
                         "achieved": achieved, "met": ok, "ratio": result.report["compression"]["ratio"]})
        results.append(result)
        progress(f"--max-error {target:g}: achieved {metric} {achieved:.4g} at ratio "
                 f"{attempts[-1]['ratio']:.1f}x ({'met' if ok else 'over the target'})")
        if ok:
            met_budget = max(met_budget or 0.0, state["budget"])
            if achieved >= 0.9 * target:          # close enough to the target
                break
        else:
            failed_budget = min(failed_budget or float("inf"), state["budget"])
            if all(d >= 1.0 for d in dens):       # nothing left to back off
                break
        tried = [a["densities"] for a in attempts]
        if met_budget is not None and failed_budget is not None:
            new_budget = float(np.sqrt(met_budget * failed_budget))   # bisect the bracket
            if choose_densities(state["table"], new_budget)[0] in tried:
                break
        else:
            # Back off (over the target) or raise (under it); a budget giving densities already tried moves on.
            factor = min(0.7, target / achieved) if not ok else min(4.0, target / max(achieved, 1e-12))
            new_budget = state["budget"] * factor
            step = 0.5 if not ok else 2.0
            for _ in range(64):
                if choose_densities(state["table"], new_budget)[0] not in tried:
                    break
                new_budget *= step
            else:
                break
        state["budget"] = new_budget
    met = [i for i, a in enumerate(attempts) if a["met"]]
    pick = max(met, key=lambda i: attempts[i]["ratio"]) if met else len(attempts) - 1
    result = results[pick]
    table = state["table"]
    result.report["max_error"] = {
        "target": target, "metric": table["metric"], "achieved": attempts[pick]["achieved"],
        "met": attempts[pick]["met"], "densities": attempts[pick]["densities"], "ratio": attempts[pick]["ratio"],
        "sensitivity": {"inputs": table["inputs"], "densities": table["densities"],
                        "layers": [{"name": r["name"], "errors": r["errors"]} for r in table["layers"]]},
        "attempts": attempts,
    }
    if not attempts[pick]["met"]:
        result.report["notes"].append(
            f"--max-error {target:g} not met: the best run reached {table['metric']} {attempts[pick]['achieved']:.4g} "
            f"(densities {attempts[pick]['densities']}); raise the target, or give data to retrain on")
    return result
