"""Tests of the synthetic benchmark layers (golden/synthetic.py)."""

import numpy as np
import pytest

from eie.config import PRESETS
from eie.golden.encode import encode_layer
from eie.golden.reference import layer_forward, layer_work
from eie.golden.synthetic import PAPER_LAYERS, PaperLayer, make_layer, random_layer

PAPER = PRESETS["paper"]

# The table of shared/EIE.md, typed in again: (in, out, weight density, act density, actual us, theoretical us).
TABLE = {
    "Alex-6": (9216, 4096, 0.09, 0.351, 30.3, 28.1),
    "Alex-7": (4096, 4096, 0.09, 0.353, 12.2, 11.7),
    "Alex-8": (4096, 1000, 0.25, 0.375, 9.9, 8.9),
    "VGG-6": (25088, 4096, 0.04, 0.183, 34.4, 28.1),
    "VGG-7": (4096, 4096, 0.04, 0.375, 8.7, 7.9),
    "VGG-8": (4096, 1000, 0.23, 0.411, 8.4, 7.3),
    "NT-We": (4096, 600, 0.10, 1.0, 8.0, 5.2),
    "NT-Wd": (600, 8791, 0.11, 1.0, 13.9, 13.0),
    "NT-LSTM": (1201, 2400, 0.10, 1.0, 7.5, 6.5),
}


def test_paper_table():
    assert list(PAPER_LAYERS) == list(TABLE)
    for name, row in TABLE.items():
        p = PAPER_LAYERS[name]
        assert (p.in_len, p.out_len, p.weight_density, p.act_density, p.paper_actual_us,
                p.paper_theoretical_us) == row
        assert p.name == name
        assert p.paper_actual_cycles == round(row[4] * 800)
        assert p.to_dict()["paper_actual_cycles"] == p.paper_actual_cycles
    assert PAPER_LAYERS["Alex-7"].paper_actual_cycles == 9760       # EIE.md: "Alex-7 actual = 9 760 cycles"


def check_layer(layer, x, spec, cfg):
    assert (layer.in_len, layer.out_len) == (spec.in_len, spec.out_len)
    assert layer.nnz == round(spec.weight_density * spec.in_len * spec.out_len)
    assert np.count_nonzero(x) == round(spec.act_density * spec.in_len)
    assert layer.codebook[0] == 0 and np.all(layer.codebook[1:] != 0)
    layer.check(cfg, lengths=False)
    # Non-zero codes use the whole codebook, roughly evenly.
    counts = np.bincount(layer.codes[layer.codes != 0], minlength=cfg.codebook_size)[1:]
    assert counts.min() > 0.5 * counts.mean()
    y = layer_forward(layer, x, cfg)
    lim = (1 << (cfg.act_bits - 1)) - 1
    assert np.mean(np.abs(y) >= lim) < 0.01, "outputs should rarely saturate"
    if layer.relu:
        assert 0.2 < np.mean(y != 0) < 0.8, "about half the outputs should survive ReLU"
    assert np.mean(np.abs(y[y != 0]) > 64) > 0.5, "outputs should use the activation range, not round to nothing"


@pytest.mark.parametrize("name", ["NT-We", "NT-LSTM", "VGG-7"])
def test_make_layer(name):
    spec = PAPER_LAYERS[name]
    layer, x = make_layer(name, PAPER, seed=3)
    check_layer(layer, x, spec, PAPER)
    assert layer.name == name and layer.relu
    if spec.act_density < 1:
        assert x.min() >= 0                   # ReLU-fed layers get ReLU-like inputs
    again, x2 = make_layer(name, PAPER, seed=3)
    assert np.array_equal(again.codes, layer.codes) and np.array_equal(x2, x)
    assert np.array_equal(again.codebook, layer.codebook) and np.array_equal(again.bias, layer.bias)
    other, x3 = make_layer(name, PAPER, seed=4)
    assert not np.array_equal(other.codes, layer.codes) and not np.array_equal(x3, x)


def test_make_layer_from_spec_and_errors():
    spec = PaperLayer("small", 300, 200, 0.1, 0.5, 1.0, 1.0)
    layer, x = make_layer(spec, PRESETS["tiny"], relu=False)
    check_layer(layer, x, spec, PRESETS["tiny"])
    assert not layer.relu
    with pytest.raises(ValueError, match=r"unknown paper layer 'Alex-9'; choose one of Alex-6, Alex-7"):
        make_layer("Alex-9", PAPER)


def test_random_layer():
    rng = np.random.default_rng(0)
    cfg = PRESETS["tiny"]
    layer, x = random_layer(rng, 50, 70, 0.3, 1.0, cfg, relu=False, signed_input=True)
    assert layer.nnz == round(0.3 * 50 * 70) and np.count_nonzero(x) == 50 and x.min() < 0
    for bad, message in [(dict(in_len=0), "in_len must be a positive integer"),
                         (dict(weight_density=1.5), "weight_density must be in range 0..1")]:
        args = dict(in_len=5, out_len=5, weight_density=0.5, act_density=0.5)
        args.update(bad)
        with pytest.raises(ValueError, match=message):
            random_layer(rng, cfg=cfg, **args)


def test_all_paper_layers():
    """All nine layers at 64 PEs: shapes, densities, outputs in range and the bound near the paper's
    theoretical time (random layers balance about as well as the paper's perfect balance)."""
    for name, spec in PAPER_LAYERS.items():
        layer, x = make_layer(name, PAPER)
        check_layer(layer, x, spec, PAPER)
        work = layer_work(encode_layer(layer, PAPER), x, PAPER)
        assert 0.7 < work.bound / spec.paper_theoretical_cycles < 1.15, name
