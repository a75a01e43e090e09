"""``eie compress``: the JSON report of digits-mlp (the issue's targets), user models, refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.cli import main
from eie.config import EIEConfig, preset
from eie.format import NetworkImage, read_manifest
from eie.golden.encode import load_layers
from eie.golden.models import digits_split, set_threads
from eie.golden.quantize import fixed_point_accuracy

set_threads()   # one torch thread: the machine is shared by parallel tests


def run_json(capsys, *argv):
    rc = main(["compress", *argv, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)        # stdout is exactly one JSON document


def test_digits_mlp_meets_the_targets(tmp_path, capsys):
    """Done means: float >= 0.96, fixed point within 1 point of float, ratio >= 20 (4 PEs)."""
    out = tmp_path / "digits"
    rc, report = run_json(capsys, "--model", "digits-mlp", "--pes", "4", "-o", str(out))
    assert rc == 0
    acc, comp = report["accuracy"], report["compression"]
    assert acc["float"] >= 0.96
    assert abs(acc["fixed_point"] - acc["float"]) <= 0.01
    assert comp["ratio"] >= 20
    assert comp["eie_bytes"] < comp["pruned_bytes"] < comp["dense_bytes"] == 4 * (64 * 300 + 300 + 300 * 100 + 100
                                                                                   + 100 * 10 + 10)
    assert comp["huffman_bytes"] < comp["eie_bytes"]
    assert [(l["in_len"], l["out_len"]) for l in report["layers"]] == [(64, 300), (300, 100), (100, 10)]
    assert report["config"]["pes"] == 4
    # The folder is self-contained: the fixed-point accuracy is reproduced from layers.npz + manifest alone.
    manifest = read_manifest(out)
    cfg = EIEConfig.from_dict(manifest["config"])
    layers = load_layers(out / "layers.npz")
    _, _, X_test, y_test = digits_split()
    assert fixed_point_accuracy(layers, X_test, y_test, cfg, manifest["input_frac"],
                                manifest["output_perm"]) == acc["fixed_point"]
    assert NetworkImage.load(out / "image.npz").config == cfg


def test_config_file_and_pes_override(tmp_path, capsys):
    cfg_path = tmp_path / "cfg.json"
    preset("tiny").replace(pes=2, act_depth=256, bias_depth=512).save(cfg_path)
    rc, report = run_json(capsys, "--config", str(cfg_path), "--density", "0.1", "-o", str(tmp_path / "o"), "--quick")
    assert rc == 0
    assert report["config"]["pes"] == 2 and report["config"]["act_depth"] == 256
    assert report["densities"] == [0.1, 0.1, 0.1]
    rc, report = run_json(capsys, "--config", str(cfg_path), "--pes", "8", "-o", str(tmp_path / "p"), "--quick")
    assert report["config"]["pes"] == 8 and report["config"]["act_depth"] == 256


def test_board_preset(tmp_path, capsys):
    """`--board NAME` compresses for the board's config (iCEBreaker: 8-bit numbers), so
    `eie build --model` can bake the result in as it is; with --config it is ambiguous."""
    from eie.boards.platforms import get_board
    rc, report = run_json(capsys, "--board", "icebreaker", "-o", str(tmp_path / "b"), "--quick")
    board = get_board("icebreaker").preset
    assert rc == 0 and EIEConfig.from_dict(report["config"]) == board and board.act_bits == 8
    assert NetworkImage.load(tmp_path / "b" / "image.npz").config == board
    rc, report = run_json(capsys, "--board", "icebreaker", "--config", "x.json", "-o", str(tmp_path / "c"))
    assert rc == 2 and "--board and --config" in report["error"]
    rc, report = run_json(capsys, "--board", "nosuchboard", "-o", str(tmp_path / "d"))
    assert rc == 2 and "unknown board 'nosuchboard'" in report["error"]


def test_conv2d_model_refused(tmp_path, capsys):
    path = tmp_path / "conv.pt"
    torch.save(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 10)), path)
    rc, report = run_json(capsys, "--model", str(path), "-o", str(tmp_path / "o"))
    assert rc == 2
    assert "(call_module Conv2d) is not supported on EIE or the host" in report["error"]


def test_too_large_layer_refused(tmp_path, capsys):
    """A pinned config (--config, a preset name too) is not resized: one error names what overflows."""
    rc, report = run_json(capsys, "--model", "digits-mlp", "--config", "tiny", "--pes", "1", "-o", str(tmp_path / "o"),
                          "--quick")
    assert rc == 2
    assert "act_depth needs 300 (limit 128)" in report["error"]
    assert "layer 0 ('fc1'): out_len=300 is out of range 1..128 (max_len = pes * act_depth = 1 * 128)" in report["error"]
    assert report["fitting_changes"] == {"act_depth": 512}


@pytest.mark.parametrize("density", ["0", "1.5", "0.1,0,0.2"])
def test_bad_density_refused(tmp_path, capsys, density):
    rc, report = run_json(capsys, "--density", density, "-o", str(tmp_path / "o"))
    assert rc == 2 and "--density must be in range (0, 1]" in report["error"]


def test_density_per_layer_parsed():
    """--density D (every layer) or D1,D2,... (one per layer); anything else names the form."""
    import argparse

    from eie.golden.cli import _densities
    assert _densities("0.1") == 0.1
    assert _densities("0.06,0.06,0.2") == [0.06, 0.06, 0.2]
    with pytest.raises(argparse.ArgumentTypeError, match="numbers separated by commas"):
        _densities("0.1;0.2")


def test_user_model_without_data_says_so(tmp_path, capsys):
    path = tmp_path / "m.pt"
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5)), path)
    rc = main(["compress", "--model", str(path), "-o", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert rc == 0
    assert "no --data given" in captured.err
    assert "note: no --data given" in captured.out and "fc2" in captured.out
    assert (tmp_path / "o" / "image.npz").exists()


def test_console_script_with_user_data(tmp_path):
    """The real command line in a fresh process: stdout holds only JSON, progress goes to stderr."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 10)) * 2
    y = rng.integers(0, 3, 400)
    X = (centres[y] + rng.standard_normal((400, 10))).astype(np.float32)
    np.savez(tmp_path / "data.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3)), tmp_path / "m.pt")
    proc = subprocess.run([sys.executable, "-m", "eie.cli", "compress", "--model", str(tmp_path / "m.pt"),
                           "--data", str(tmp_path / "data.npz"), "--density", "0.5", "-o", str(tmp_path / "o"),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data"] == {"train": 300, "test": 100, "source": "--data"}
    assert report["accuracy"]["fixed_point"] > 0.8      # blobs: easy after retraining, even at 50 %
    assert "prune round" in proc.stderr


def test_inputs_max_error_and_share_init(tmp_path, capsys):
    """--inputs (unlabelled) retrains by distillation, --max-error reports the target reached, --share-init
    names the init of every layer; the manifest keeps them."""
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 12)), tmp_path / "ffn.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 12)).astype(np.float32))
    rc, report = run_json(capsys, "--model", str(tmp_path / "ffn.pt"), "--inputs", str(tmp_path / "x.npy"),
                          "--max-error", "0.3", "--share-init", "linear", "-o", str(tmp_path / "o"), "--quick")
    assert rc == 0
    assert report["objective"]["loss"] == "mse_distillation"
    me = report["max_error"]
    assert me["target"] == 0.3 and me["metric"] == "rel_l2" and me["met"]
    assert me["achieved"] == report["fidelity"]["fixed_point"]["rel_l2"] <= 0.3
    assert [l["share_init"] for l in report["layers"]] == ["linear", "linear"]
    manifest = read_manifest(tmp_path / "o")
    assert manifest["max_error"]["densities"] == report["densities"] == me["densities"]
    assert manifest["objective"] == report["objective"]
    assert manifest["layers"][0]["share_init"] == "linear"
    rc, report = run_json(capsys, "--model", str(tmp_path / "ffn.pt"), "--max-error", "0.3", "--density", "0.5",
                          "-o", str(tmp_path / "p"))
    assert rc == 2 and "give it or --density, not both" in report["error"]
    rc, report = run_json(capsys, "--model", str(tmp_path / "ffn.pt"), "--max-error", "0", "-o", str(tmp_path / "q"))
    assert rc == 2 and "--max-error must be a number > 0" in report["error"]
