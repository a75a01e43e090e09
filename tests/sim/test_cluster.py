"""Scale-out (issue 17): the task model (``eie.cluster``) and ``eie regress`` on a Ray cluster.

The fast tests run tasks in this process and in a local process pool. The
cluster tests share one loopback Ray cluster (:class:`eie.cluster.LoopbackCluster`:
a head and two worker nodes, each a separate ``ray start`` with one CPU): a
small regression on it, with a worker node killed while it runs a task,
gives the same result (and result digest) as the serial run, and the task
that was running on the dead node is retried elsewhere; a task that fails on
its own merits is not retried and is reported with its command; ``--ray
auto`` from the command line finds the cluster through ``RAY_ADDRESS``;
``eie sweep --rtl`` points (tasks) give RTL cycles equal to the model's, the
same serially, in two processes and on the cluster.
Start-up of the cluster is about 30 s; the module takes about 1.5 minutes.
"""

from __future__ import annotations

import json
import time

import pytest

from eie import cli, cluster
from eie.sim import regress

import sim_cases

TINY = sim_cases.matrix()["tiny"]
SEED = 1


def _echo(k: int, **params) -> cluster.Task:
    return cluster.Task("echo", f"echo{k}", "eie.cluster:echo_task", {"value": k, **params}, seed=k,
                        config_digest="none", command=f"echo {k}")


# -- the task model, without Ray ------------------------------------------------------------------

def test_a_task_writes_only_its_own_folder_and_starts_clean(tmp_path):
    """A task's folder is <root>/<name>, holds task.json, its work's files and
    result.json, and nothing is written beside it; a rerun (a retry) empties it first."""
    task = _echo(1)
    (tmp_path / "echo1").mkdir()
    (tmp_path / "echo1" / "stale.txt").write_text("from a dead attempt")
    env = cluster.run_task(task, tmp_path)
    assert env["ok"] and env["result"]["value"] == 1 and env["error"] is None
    assert (env["task"], env["kind"], env["digest"], env["seed"], env["command"], env["config_digest"]) == \
        ("echo1", "echo", task.digest, 1, "echo 1", "none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo1"]
    assert sorted(p.name for p in (tmp_path / "echo1").iterdir()) == ["echo.json", "result.json", "task.json"]
    assert json.loads((tmp_path / "echo1" / "result.json").read_text())["result"] == env["result"]
    assert cluster.Task.from_dict(json.loads((tmp_path / "echo1" / "task.json").read_text())) == task


def test_a_task_failing_on_its_own_merits_is_reported_with_its_command(tmp_path):
    env = cluster.run_task(_echo(2, fail=True), tmp_path)
    assert not env["ok"] and env["result"] is None
    assert env["error"] == "ValueError: asked to fail (value 2)" and env["command"] == "echo 2"
    assert "Traceback" in (tmp_path / "echo2" / "error.txt").read_text()


def test_results_come_in_task_order_whatever_finishes_first(tmp_path):
    """Two local processes; the first task is the slowest: the envelopes still come in task order."""
    tasks = [_echo(k, sleep=s) for k, s in enumerate([2.0, 0.0, 0.5, 0.0])]
    lines = []
    envs, stats = cluster.run_tasks(tasks, tmp_path, jobs=2, progress=lines.append)
    assert [e["result"]["value"] for e in envs] == [0, 1, 2, 3]
    assert (stats.executor, stats.tasks, stats.done, stats.failed) == ("jobs", 4, 4, 0)
    assert len({e["pid"] for e in envs}) == 2, "the tasks did not run in two processes"
    assert lines[-1].endswith("tasks: 4/4 done, 0 running, 0 failed")


def test_regress_digest_does_not_depend_on_chunking_or_processes(tmp_path):
    """Six cases on the tiny build: one task, three tasks in this process, three
    tasks in two processes: the same result and the same digest."""
    one = regress.regress(6, SEED, [TINY], work_dir=tmp_path / "a")
    three = regress.regress(6, SEED, [TINY], work_dir=tmp_path / "b", chunk=2)
    pool = regress.regress(6, SEED, [TINY], work_dir=tmp_path / "c", chunk=2, jobs=2)
    assert not one["failures"] and one["cases"] == 6 and one["configs"][0]["cases"] == 6
    assert [len(r["tasks"]) for r in (one, three, pool)] == [1, 3, 3]
    assert one["digest"] == three["digest"] == pool["digest"]
    assert regress.deterministic(one) == regress.deterministic(three) == regress.deterministic(pool)
    assert pool["executor"]["executor"] == "jobs"
    # Each task wrote only inside its own folder (the simulation's job folder is in it).
    names = sorted(t["task"] for t in pool["tasks"])
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == names
    for name in names:
        assert sorted(p.name for p in (tmp_path / "c" / name).iterdir()) == ["job", "result.json", "task.json"]
    assert [t["command"] for t in three["tasks"]] == [f"eie regress --seed {SEED} --config tiny --case {j}-{j + 1}"
                                                      for j in (0, 2, 4)]


def test_a_tasks_command_reruns_its_cases_alone(tmp_path, capsys):
    """The command of task `cases 2-3` runs cases 2 and 3 alone, and they are the same
    networks with the same counters and outputs as inside a run of all six."""
    run = regress.regress(6, SEED, [TINY], work_dir=tmp_path / "all", chunk=2)
    argv = run["tasks"][1]["command"].split()
    assert argv[:2] == ["eie", "regress"] and argv[-1] == "2-3"
    assert cli.main(argv[1:] + ["--json", "--work-dir", str(tmp_path / "alone")]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["cases"] == 2 and alone["case"] == [2, 3] and alone["configs"][0]["first_case"] == 2
    assert len(run["case_digests"]) == 6 and len(alone["case_digests"]) == 2
    assert alone["case_digests"] == {k: v for k, v in run["case_digests"].items() if k.endswith((":2", ":3"))}


def test_ray_asked_for_but_not_installed_names_the_install_command(monkeypatch, capsys):
    monkeypatch.setattr(cluster, "ray_available", lambda: False)
    assert cli.main(["regress", "--config", "tiny", "--cases", "2", "--ray", "auto", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert "pip install 'eie[cluster]'" in err and "--jobs" in err
    assert cli.main(["regress", "--config", "tiny", "--cases", "2", "--jobs", "0", "--json"]) == 2
    assert "--jobs must be at least 1" in json.loads(capsys.readouterr().out)["error"]


def test_an_address_where_no_cluster_answers_fails_fast_naming_the_fix(monkeypatch, capsys):
    """Ray itself would wait minutes for a head that is not there; eie says so in seconds."""
    pytest.importorskip("ray", reason=f"Ray is not installed ({cluster.RAY_INSTALL})")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    t0 = time.monotonic()
    assert cli.main(["regress", "--config", "tiny", "--cases", "2", "--ray", "127.0.0.1:1", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert "no Ray cluster answers at 127.0.0.1:1" in err and "ray start --head" in err and "--jobs" in err
    assert time.monotonic() - t0 < 30


# -- on a loopback Ray cluster ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray", reason=f"Ray is not installed ({cluster.RAY_INSTALL})")
    with cluster.LoopbackCluster(workers=2, cpus=1) as c:
        cluster.connect_ray(c.address)
        yield c


@pytest.mark.xdist_group("ray_cluster")
def test_regress_on_a_cluster_survives_a_killed_worker_and_equals_the_serial_run(ray_cluster, tmp_path):
    """24 cases of the tiny build in 4 tasks on three nodes; worker node 0 is
    killed while it runs one of them: that task is retried on another node,
    no case is lost, and the result (digest included) is the serial run's.

    "While it runs" is made sure of, not hoped for: when a task is seen started
    on node 0, the node is frozen (SIGSTOP) and the driver polls on for a second;
    a task that had already returned shows up as finished (the node is let go and
    the next one is waited for), one that has not can no longer finish, and the
    node is killed under it."""
    serial = regress.regress(24, SEED, [TINY], work_dir=tmp_path / "serial", chunk=6)
    assert not serial["failures"] and serial["executor"]["executor"] == "serial"
    victim = ray_cluster.node_ids()[0]
    killed, frozen, passed = [], {}, set()

    def kill_worker_0_mid_task(starts, finished):
        if killed:
            return
        if frozen:
            if frozen["name"] in finished:            # it returned before the freeze: not a kill mid-task
                passed.add(frozen.pop("name"))
                ray_cluster.pause_worker(0, pause=False)
                frozen.clear()
            elif time.monotonic() - frozen["at"] > 1.0:
                ray_cluster.kill_worker(0)
                killed.append(frozen["name"])
            return
        for name, nodes in starts.items():
            if nodes[-1] == victim and name not in finished and name not in passed:
                ray_cluster.pause_worker(0)
                frozen.update(name=name, at=time.monotonic())
                return

    lines = []
    res = regress.regress(24, SEED, [TINY], work_dir=tmp_path / "ray", chunk=6, ray=ray_cluster.address,
                          on_poll=kill_worker_0_mid_task, progress=lines.append)
    assert killed, "no task ran on worker node 0"
    assert not res["failures"], [f["message"] for f in res["failures"]]
    ex = res["executor"]
    assert (ex["executor"], ex["nodes"], ex["tasks"], ex["done"], ex["failed"]) == ("ray", 3, 4, 4, 0)
    assert ex["retries"] >= 1
    (row,) = [t for t in res["tasks"] if t["task"] == killed[0]]
    assert row["attempts"] >= 2 and row["node"] != victim
    assert res["digest"] == serial["digest"]
    assert regress.deterministic(res) == regress.deterministic(serial)
    assert any("retried" in line for line in lines) and "tasks: 4/4 done, 0 running, 0 failed" in lines[-1]


@pytest.mark.xdist_group("ray_cluster")
def test_cluster_messages_never_reach_stdout(ray_cluster, capsys):
    """Ray's driver prints a node's death (as after the killed worker above) on
    stdout from a background thread, even with log_to_driver off; stdout holds the
    one --json document, so a connected eie sends those messages to stderr."""
    from ray._private import worker
    worker.print_to_stdstream({"lines": ["eie-test: the node 0xabc has been marked dead"], "pid": "raylet",
                               "is_err": False}, ignore_prefix=False)
    out, err = capsys.readouterr()
    assert out == "" and "eie-test: the node 0xabc has been marked dead" in err


def test_a_task_failing_on_its_own_merits_on_the_cluster_is_not_retried(ray_cluster, tmp_path):
    tasks = [_echo(0), _echo(1, fail=True)]
    envs, stats = cluster.run_tasks(tasks, tmp_path, ray=ray_cluster.address)
    assert envs[0]["ok"] and not envs[1]["ok"]
    assert envs[1]["error"] == "ValueError: asked to fail (value 1)" and envs[1]["command"] == "echo 1"
    assert envs[1]["attempts"] == 1 and stats.retries == 0 and stats.failed == 1


@pytest.mark.xdist_group("ray_cluster")
def test_cli_ray_auto_finds_the_cluster_and_gives_the_serial_digest(ray_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    argv = ["regress", "--config", "tiny", "--cases", "4", "--seed", str(SEED), "--chunk", "2", "--json"]
    t0 = time.monotonic()
    assert cli.main(argv + ["--ray", "auto", "--work-dir", str(tmp_path / "ray")]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert cli.main(argv + ["--jobs", "1", "--work-dir", str(tmp_path / "serial")]) == 0
    serial = json.loads(capsys.readouterr().out)
    assert on_ray["executor"]["executor"] == "ray" and on_ray["executor"]["address"] == "auto"
    assert on_ray["mismatches"] == 0 and on_ray["digest"] == serial["digest"], time.monotonic() - t0


# -- eie sweep --rtl: sweep points as tasks ----------------------------------------------------------

SWEEP = ["sweep", "fig11", "--rtl", "--layers", "Alex-8", "--scale", "64", "--pes-list", "1,2", "--mode", "balanced",
         "--json"]


def _points(res: dict) -> list:
    return [{k: v for k, v in r.items() if k not in ("node", "rtl_build_s", "rtl_run_s")} for r in res["rtl"]]


def test_sweep_rtl_points_are_tasks_with_rtl_cycles_equal_to_the_model(tmp_path, capsys):
    """fig11 of Alex-8 / 64 at 1 and 2 PEs: one task per point, built and simulated,
    RTL cycles equal to the cycle model's; in two processes the same points."""
    assert cli.main(SWEEP + ["-o", str(tmp_path / "serial")]) == 0
    serial = json.loads(capsys.readouterr().out)
    assert [(r["pes"], r["fifo_depth"]) for r in serial["rtl"]] == [(1, 8), (2, 8)]
    for r in serial["rtl"]:
        assert r["cycles_rtl"] is not None and r["cycles_rtl"] == r["cycles"] and r["rtl_matches_model"]
        assert r["rtl_mismatches"] == 0
    assert serial["rtl"][0]["cycles"] > serial["rtl"][1]["cycles"]       # 2 PEs are faster
    assert (tmp_path / "serial" / "rtl.csv").exists()
    assert cli.main(SWEEP + ["-o", str(tmp_path / "pool"), "--jobs", "2"]) == 0
    pool = json.loads(capsys.readouterr().out)
    assert pool["executor"]["executor"] == "jobs" and _points(pool) == _points(serial)


@pytest.mark.xdist_group("ray_cluster")
def test_sweep_rtl_on_the_cluster_equals_the_serial_points(ray_cluster, tmp_path, capsys):
    assert cli.main(SWEEP + ["-o", str(tmp_path / "serial")]) == 0
    serial = json.loads(capsys.readouterr().out)
    assert cli.main(SWEEP + ["-o", str(tmp_path / "ray"), "--ray", ray_cluster.address]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert on_ray["executor"]["executor"] == "ray" and _points(on_ray) == _points(serial)
