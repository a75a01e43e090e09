"""docs/format.md is enough to run a compressed network: a reader written from the page alone.

``run_folder`` uses numpy and the files only (no ``eie`` code): the manifest's
``input_frac``, ``input_perm``, ``output_perm`` and ``output_frac``, and the
memory image decoded as the page's "Interleaved CSC" and "Memory images"
sections say. Its outputs must equal the golden model's on the network before
any permutation was applied.
"""

import json

import numpy as np
import pytest

from eie.config import preset
from eie.format import write_manifest
from eie.golden.balance import balance_network, unpermute_output
from eie.golden.encode import QuantLayer, build_image
from eie.golden.quantize import dequantize, quantize_input
from eie.golden.reference import forward


def run_folder(directory, x_float):
    """Logical outputs (float, and fixed point) of the folder's network on float inputs (batch, in_len)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    img = np.load(directory / "image.npz", allow_pickle=False)
    cfg = json.loads(str(img["config"]))
    n, ib, zb, E, A = cfg["pes"], cfg["index_bits"], cfg["zrun_bits"], cfg["entries_per_word"], cfg["act_bits"]
    lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    x = np.clip(np.floor(np.asarray(x_float, np.float64) * 2.0 ** manifest["input_frac"] + 0.5), lo, hi)
    x = x.astype(np.int64)
    if manifest.get("input_perm") is not None:
        x = x[:, manifest["input_perm"]]                        # hw_in[j] = x[input_perm[j]]
    spmat, ptr, codebook, bias = img["spmat"], img["ptr"], img["codebook"], img["bias"]
    entry_mask = (1 << (ib + zb)) - 1
    for in_len, out_len, ptr_base, slot, bias_base, shift, relu in img["layers"].tolist():
        acc = np.zeros((len(x), out_len), dtype=object)         # exact integers
        for k in range(n):
            words = [int(w) for w in spmat[k]]
            for r in range(-(-(out_len - k) // n)):              # PE k's local rows, global row r * n + k
                acc[:, r * n + k] = int(bias[k, bias_base + r])
            for j in range(in_len):
                row = -1
                for e in range(int(ptr[k, ptr_base + j]), int(ptr[k, ptr_base + j + 1])):
                    entry = (words[e // E] >> (e % E) * (ib + zb)) & entry_mask
                    v, z = entry & ((1 << ib) - 1), entry >> ib
                    row += z + 1
                    if v:
                        acc[:, row * n + k] += int(codebook[slot, v]) * x[:, j].astype(object)
        if shift:
            acc = (acc + (1 << (shift - 1))) >> shift
        x = np.clip(acc.astype(np.int64), lo, hi)
        if relu:
            x = np.maximum(x, 0)
    logical = np.empty_like(x)
    logical[:, manifest.get("output_perm") or list(range(x.shape[1]))] = x    # logical[output_perm[h]] = hw_out[h]
    return logical * 2.0 ** -manifest["output_frac"], logical


def _random_network(rng, dims, cfg):
    layers = []
    for l in range(len(dims) - 1):
        shape = (dims[l + 1], dims[l])
        codes = rng.integers(1, 1 << cfg.index_bits, shape) * (rng.random(shape) < rng.uniform(0.1, 0.6))
        codebook = np.concatenate([[0], rng.integers(-300, 300, (1 << cfg.index_bits) - 1)])
        layers.append(QuantLayer(codes=codes, codebook=codebook, bias=rng.integers(-5000, 5000, dims[l + 1]),
                                 shift=int(rng.integers(0, 9)), relu=l < len(dims) - 2, name=f"fc{l + 1}",
                                 in_frac=6, out_frac=6, codebook_frac=int(rng.integers(0, 9))))
    return layers


@pytest.mark.parametrize("seed", range(4))
def test_reader_from_the_doc_alone(tmp_path, seed):
    """Balanced rows (and a shuffled input order): the page's reader gets the golden model's outputs."""
    rng = np.random.default_rng(seed)
    cfg = preset("tiny").replace(pes=int(rng.choice([2, 3, 4])), act_depth=32, spmat_depth=512, ptr_depth=256,
                                 bias_depth=64, zrun_bits=2)
    model = _random_network(rng, [int(rng.integers(8, 40)) for _ in range(3)], cfg)
    input_perm = rng.permutation(model[0].in_len)
    first = model[0]
    shuffled = QuantLayer(codes=first.codes[:, input_perm], codebook=first.codebook, bias=first.bias,
                          shift=first.shift, relu=first.relu, name=first.name, in_frac=first.in_frac,
                          out_frac=first.out_frac, codebook_frac=first.codebook_frac)
    b = balance_network([shuffled, *model[1:]], cfg, reorder_input=False)
    assert not np.array_equal(b.output_perm, np.arange(len(b.output_perm)))        # something to undo
    write_manifest(tmp_path, cfg, input_frac=6, output_frac=6, input_perm=[int(p) for p in input_perm],
                   output_perm=[int(p) for p in b.output_perm])
    build_image(b.layers, cfg).save(tmp_path / "image.npz")

    X = rng.normal(0, 2, (6, model[0].in_len))
    X[:, rng.random(model[0].in_len) < 0.3] = 0
    y, y_fixed = run_folder(tmp_path, X)
    golden = forward(model, quantize_input(X, 6, cfg), cfg)                       # the unpermuted network
    assert np.array_equal(y_fixed, golden)
    assert np.array_equal(y, dequantize(golden, 6))
    # the directions matter: reading the outputs with the permutation the other way round is wrong
    hw = forward(b.layers, quantize_input(X, 6, cfg)[:, input_perm], cfg)
    assert np.array_equal(unpermute_output(hw, b.output_perm), golden)
    assert not np.array_equal(hw[:, b.output_perm], golden) or \
        np.array_equal(b.output_perm[b.output_perm], np.arange(len(b.output_perm)))


def test_worked_example():
    """The page's example: output_perm = [2, 0, 3, 1], hardware outputs [5, -3, 7, 0] -> [-3, 0, 5, 7]."""
    assert unpermute_output(np.array([5, -3, 7, 0]), [2, 0, 3, 1]).tolist() == [-3, 0, 5, 7]
    codes = np.arange(4)[:, None] * np.ones((1, 3), int)                           # row i holds code i
    assert codes[[2, 0, 3, 1]][:, 0].tolist() == [2, 0, 3, 1]                      # codes' rows: model rows 2, 0, 3, 1
