"""Scale-out of `eie regress`: serial vs `--jobs 2` vs a loopback Ray cluster (issue 17).

Runs the same regression (``--cases N --configs K --seed S --chunk C``) six
times (three with ``--cached-only``), through the command line as a user would:

1. with fresh build caches (every config is built): on a loopback Ray
   cluster (a head and two worker nodes, one CPU each, their own
   ``ray start`` processes; ``--ray auto`` through ``RAY_ADDRESS``),
   serially (``--jobs 1``), and in two local processes (``--jobs 2``);
2. with the builds cached (simulation only): the same three.

Checks that every run gives the same result digest with 0 mismatches, and
prints one JSON object: per run its wall time, tasks/s, speed-up against the
serial run of its kind, the per-task wall times, builds and retries; and a
**projection** of tasks/s on bigger clusters from the measured per-task
times (labelled as such)::

    .venv/bin/python bench/cluster.py [--cases 200] [--configs 4] [--seed 0] [--chunk 25] [--out build/bench/cluster]
    .venv/bin/python bench/cluster.py --cases 1000 --cached-only    # after one serial run of the same seed
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _eie(args: list[str], env: dict, out: Path, name: str) -> dict:
    exe = Path(sys.executable).with_name("eie")
    t0 = time.monotonic()
    proc = subprocess.run([str(exe), "regress", *args, "--json", "--work-dir", str(out / f"work-{name}")],
                          capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    (out / f"{name}.log").write_text(proc.stderr)
    if not proc.stdout.strip():
        raise RuntimeError(f"{name}: eie regress printed nothing (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    res = json.loads(proc.stdout)
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    shutil.rmtree(out / f"work-{name}", ignore_errors=True)
    res["_wall_s"] = round(wall, 2)
    return res


def _row(res: dict, base: dict | None) -> dict:
    ex = res["executor"]
    times = [t["wall_s"] for t in res["tasks"] if t["wall_s"] is not None]
    return {"executor": ex["executor"], "workers": ex["workers"], "nodes": ex["nodes"], "tasks": ex["tasks"],
            "wall_s": res["_wall_s"], "tasks_wall_s": ex["wall_s"],
            "tasks_per_s": round(ex["tasks"] / res["_wall_s"], 3),
            "speed_up": round(base["_wall_s"] / res["_wall_s"], 2) if base else 1.0,
            "task_s": {"mean": round(statistics.mean(times), 2), "min": round(min(times), 2),
                       "max": round(max(times), 2), "sum": round(sum(times), 1)},
            "builds": res["builds"], "retries": ex["retries"], "failed": ex["failed"],
            "mismatches": res["mismatches"] + res["cycle_mismatches"], "digest": res["digest"]}


def main(argv=None) -> int:
    from eie.cluster import LoopbackCluster
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--configs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=25)
    p.add_argument("--out", default=str(REPO / "build" / "bench" / "cluster"))
    p.add_argument("--cached-only", action="store_true",
                   help="only the three runs with cached builds, on the checkout's build cache (build/sim, "
                        "warm it first with one serial run)")
    a = p.parse_args(argv)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    common = ["--cases", str(a.cases), "--configs", str(a.configs), "--seed", str(a.seed), "--chunk", str(a.chunk)]
    roots = {k: out / f"builds-{k}" for k in ("ray", "serial", "jobs2")}
    if a.cached_only:
        from eie.sim.runner import build_root
        roots["ray"] = build_root()
    base_env = {**os.environ}
    base_env.pop("RAY_ADDRESS", None)
    os.environ["EIE_SIM_BUILD"] = str(roots["ray"])     # the cluster's nodes inherit it from `ray start`
    runs = {}
    t_start = time.monotonic()
    with LoopbackCluster(workers=2, cpus=1) as cluster:
        t_cluster = time.monotonic() - t_start
        ray_env = {**base_env, "RAY_ADDRESS": cluster.address, "EIE_SIM_BUILD": str(roots["ray"])}
        plans = [("fresh-ray", ["--ray", "auto"], ray_env),
                 ("fresh-serial", ["--jobs", "1"], {**base_env, "EIE_SIM_BUILD": str(roots["serial"])}),
                 ("fresh-jobs2", ["--jobs", "2"], {**base_env, "EIE_SIM_BUILD": str(roots["jobs2"])}),
                 ("cached-serial", ["--jobs", "1"], ray_env),
                 ("cached-jobs2", ["--jobs", "2"], ray_env),
                 ("cached-ray", ["--ray", "auto"], ray_env)]
        if a.cached_only:
            plans = plans[3:]
        for name, extra, env in plans:
            runs[name] = _eie(common + extra, env, out, name)
            print(f"{name}: {runs[name]['_wall_s']} s, digest {runs[name]['digest']}", file=sys.stderr, flush=True)
    rows = {}
    for name, res in runs.items():
        kind = name.split("-")[0]
        rows[name] = _row(res, runs[f"{kind}-serial"])
    digests = {r["digest"] for r in rows.values()}
    per_task = rows["cached-serial"]["task_s"]["mean"]
    overhead = max(0.0, rows["cached-ray"]["wall_s"] - rows["cached-ray"]["task_s"]["sum"] / 3)
    projection = {f"{n} nodes x {c} CPUs": round(n * c / per_task, 2)
                  for n, c in ((1, 2), (3, 1), (4, 8), (16, 8), (64, 8))}
    summary = {"cases": a.cases, "configs": a.configs, "seed": a.seed, "chunk": a.chunk,
               "cluster_start_s": round(t_cluster, 1), "same_digest": len(digests) == 1,
               "digest": digests.pop() if len(digests) == 1 else sorted(digests), "runs": rows,
               "projection_note": "PROJECTION, not measured: tasks/s = CPUs / mean per-task time of the cached "
                                  "serial run, for runs of many more tasks than CPUs, one task per CPU, "
                                  "each node building each config once (first tasks slower)",
               "projected_tasks_per_s": projection, "driver_overhead_s": round(overhead, 1),
               "cpus_here": os.cpu_count(), "load_avg": os.getloadavg()}
    print(json.dumps(summary, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if summary["same_digest"] and all(r["mismatches"] == 0 and not r["failed"] for r in rows.values()) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
