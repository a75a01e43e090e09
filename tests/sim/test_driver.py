"""sim/driver.py without a simulator: job folders, mismatch location and messages."""

import numpy as np
import pytest

from eie.config import preset
from eie.golden.encode import QuantLayer, build_image
from eie.sim import driver

CFG = preset("tiny")


def _image():
    layer = QuantLayer(codes=np.ones((6, 5), np.uint8), codebook=np.arange(16), bias=np.zeros(6, np.int64),
                       shift=0, relu=False)
    return build_image([layer], CFG)


def test_first_mismatch_names_row_and_counts():
    assert driver.first_mismatch([1, 2, 3], [1, 2, 3], 4) is None
    assert driver.first_mismatch([1, 2, 3, 4], [1, 9, 3, 0], 4) == (1, 2, 9, 2)
    with pytest.raises(ValueError, match="shapes differ"):
        driver.first_mismatch([1, 2], [1, 2, 3], 4)


def test_mismatch_messages():
    m = driver.Mismatch("net", 3, "output", 120, 118, layer=1, row=37, pe=1, local_row=9, rows_wrong=3)
    assert str(m) == ("network 'net' inference 3: layer 1, row 37 (PE 1, local row 9): "
                      "expected 120, got 118 (3 rows differ)")
    c = driver.Mismatch("net", 0, "cycles", 63, 319)
    assert "cycles counter 319 != 63" in str(c) and c.to_dict()["message"] == str(c)


def test_write_job_round_trip_and_checks(tmp_path):
    image = _image()
    x = np.arange(5)[None, :]
    job = driver.write_job(tmp_path, CFG, [("a", image, x)], link="python", idle=0.5, backpressure=0.25)
    spec, nets = driver.read_job(job)
    assert spec["link"] == "python" and spec["idle"] == 0.5 and spec["config"] == CFG.to_dict()
    assert nets[0].name == "a" and np.array_equal(nets[0].inputs, x)
    assert nets[0].image.config == CFG and np.array_equal(nets[0].image.spmat, image.spmat)
    with pytest.raises(ValueError, match="shape"):
        driver.write_job(tmp_path, CFG, [("a", image, np.zeros((1, 4), np.int64))])
    with pytest.raises(ValueError, match="integer"):
        driver.write_job(tmp_path, CFG, [("a", image, np.zeros((1, 5)))])
    with pytest.raises(ValueError, match="unique"):
        driver.write_job(tmp_path, CFG, [("a", image, x), ("a", image, x)])
    with pytest.raises(ValueError, match="encoded for config"):
        driver.write_job(tmp_path, CFG.replace(fifo_depth=2), [("a", image, x)])
    with pytest.raises(ValueError, match="probability"):
        driver.write_job(tmp_path, CFG, [("a", image, x)], idle=1.0)


def test_batches_fit_the_capture_memory():
    image = _image()
    n = driver._batch_size(CFG, image.layers, 64, False, 1 << 16)
    assert 1 <= n <= 64
    assert driver._batch_size(CFG, image.layers, 64, True, 64) == 1
