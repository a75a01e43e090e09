"""The Verilator build cache of sim/runner.py: keys, locking, stand-in builds.

The builds here use a behavioural stand-in array (``standin.py``) inside the
real protocol decoder, so they are small and independent of the PE array.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from eie.config import EIEConfig, preset
from eie.sim import driver, runner

from standin import standin_verilog


def test_build_key_tracks_generator_harness_and_options():
    cfg = preset("tiny")
    gen = runner.Generator("a", "k1", standin_verilog)
    key = runner._build_key(cfg, gen, False, "O1")
    assert key.startswith(cfg.digest)
    assert runner._build_key(cfg, gen, False, "O1") == key                    # stable
    assert runner._build_key(cfg, runner.Generator("a", "k2", standin_verilog), False, "O1") != key
    assert runner._build_key(cfg, gen, True, "O1").endswith("-fst")
    assert runner._build_key(cfg, gen, False, "O0") != key
    assert runner._build_key(cfg.replace(fifo_depth=2), gen, False, "O1") != key


def test_hw_generator_hash_covers_sources(tmp_path, monkeypatch):
    gen = runner.HwGenerator()
    assert gen.key == runner.HwGenerator().key and len(gen.key) == 12
    # a copy of the sources hashes the same; editing any generator source changes the key
    for rel in ["eie/config.py", "eie/protocol.py"] + [f"hw/{p.name}" for p in (runner.REPO / "hw").glob("*.py")]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((runner.REPO / rel).read_bytes())
    monkeypatch.setattr(runner, "REPO", tmp_path)
    assert runner.HwGenerator().key == gen.key
    previous = gen.key
    for rel in ("hw/pe.py", "eie/config.py", "eie/protocol.py"):
        with open(tmp_path / rel, "a") as f:
            f.write("\n# edited\n")
        edited = runner.HwGenerator().key
        assert edited != previous, rel
        previous = edited


def test_build_key_tracks_the_harness(tmp_path, monkeypatch):
    cfg = preset("tiny")
    gen = runner.Generator("a", "k1", standin_verilog)
    key = runner._build_key(cfg, gen, False, "O1")
    for name in ("HARNESS", "HARNESS_VLT"):
        copy = tmp_path / getattr(runner, name).name
        copy.write_bytes(getattr(runner, name).read_bytes() + b"\n// edited\n")
        with monkeypatch.context() as m:
            m.setattr(runner, name, copy)
            assert runner._build_key(cfg, gen, False, "O1") != key, name


def test_bad_arguments():
    with pytest.raises(ValueError, match="opt must be one of"):
        runner.build(preset("tiny"), opt="O9")
    with pytest.raises(TypeError):
        runner.build({"pes": 4})
    with pytest.raises(ValueError, match="link must be one of"):
        driver.write_job("unused", preset("tiny"), [], link="uart")


@pytest.mark.slow
@pytest.mark.xdist_group("sim_standin")
def test_concurrent_builds_share_one(tmp_path):
    """Two workers asking for the same build: one builds, the other waits on the
    lock and gets the cached model; the model then passes the memory round trip."""
    calls = []

    def verilog(cfg):
        calls.append(cfg)
        return standin_verilog(cfg)

    cfg = EIEConfig(pes=2, spmat_depth=64, ptr_depth=64, act_depth=16, bias_depth=16)
    gen = runner.Generator("standin", "standin-test", verilog)
    builds = []
    threads = [threading.Thread(target=lambda: builds.append(runner.build(cfg, generator=gen, root=tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(b.cached for b in builds) == [False, True]
    assert builds[0].directory == builds[1].directory
    assert runner.build(cfg, generator=gen, root=tmp_path).cached
    job = driver.write_roundtrip_job(tmp_path / "job", cfg, link="python", idle=0.3, backpressure=0.3, items=4,
                                     broadcast=False)
    runner.run(builds[0], job, testcase="roundtrip")
    assert driver.read_result(job)["errors"] == []


def test_prune_removes_only_stale_builds_of_the_same_variant(tmp_path):
    def make(name, **info):
        d = tmp_path / name
        d.mkdir()
        (d / "build.json").write_text(json.dumps(info))
        old = time.time() - runner.PRUNE_AFTER_S - 10
        os.utime(d / "build.json", (old, old))
        return d

    base = {"digest": "abc", "waves": False, "opt": "O1", "generator": "rtl", "simulator": "verilator"}
    current = make("abc-new", **base, generator_key="g2", harness="new")
    stale = make("abc-old", **base, generator_key="g1", harness="old")
    other_opt = make("abc-o2", **{**base, "opt": "O2"}, generator_key="g1", harness="o2")
    traced = make("abc-fst", **{**base, "waves": True}, generator_key="g1", harness="fst")
    other_cfg = make("xyz-old", **{**base, "digest": "xyz"}, generator_key="g1", harness="x")
    netlist = make("abc-gl", **{**base, "generator": "netlist"}, generator_key="g1", harness="gl")
    icarus = make("abc-iv", **{**base, "simulator": "icarus"}, generator_key="g1", harness="iv")
    recent = make("abc-recent", **base, generator_key="g0", harness="recent")
    os.utime(recent / "build.json")                                   # finished just now: maybe in use
    runner._prune(current, {**base, "generator_key": "g2", "harness": "new"})
    assert current.exists() and not stale.exists() and recent.exists()
    assert other_opt.exists() and traced.exists() and other_cfg.exists()
    assert netlist.exists() and icarus.exists()         # another generator's or simulator's build is kept
