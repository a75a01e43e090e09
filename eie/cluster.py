"""Tasks, and where they run: in this process, a local process pool, or a Ray cluster.

One task model for every scale-out command (``eie regress``, ``eie build
--seeds``): a :class:`Task` is self-contained. Its inputs are a JSON object
(``params``), its work is a function named by ``entry`` (``"module:function"``,
called as ``function(params, folder) -> dict``), its output a JSON object. It
records the digest of its config and its seed, and the command that reruns it
alone on one machine. A task writes only inside its own folder
(``<root>/<task name>``, emptied when it starts, so a retried task starts
clean): ``task.json`` (what it was asked), whatever its work writes, and
``result.json`` (its envelope, below). Shared per-node caches (the Verilator
builds under ``build/sim``, keyed by config digest) are the one exception,
and they are written under a lock.

:func:`run_tasks` runs a list of tasks and returns their envelopes *in the
order of the list*, whatever order they finished in, so a run's results do not
depend on where or when its tasks ran:

``jobs=1`` (default)
    one after the other, in this process (what eie did before).
``jobs=N``
    a local process pool of ``N`` workers (no Ray needed).
``ray="ADDRESS"`` or ``ray="auto"``
    submitted to a running Ray cluster (``pip install eie[cluster]``;
    docs/cluster.md). A task whose worker or node dies (a *system* failure)
    is retried by Ray, up to ``max_retries`` times, on any live node; a task
    that fails on its own merits (an exception in its work) is not retried:
    its envelope says ``ok: false`` with the error and the command that
    reproduces it locally.

The envelope of a task (what :func:`run_task` returns)::

    {"task", "kind", "digest" (of kind, entry and params), "config_digest",
     "seed", "command", "ok", "result" (the work's JSON, or None), "error"
     (None, or the last line of the exception), "node" (Ray node id or host
     name), "pid", "wall_s", "attempts" (times it was started: 1 unless a
     worker died under it; Ray runs only)}
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["Task", "run_task", "run_tasks", "RunStats", "connect_ray", "ray_available", "RAY_INSTALL",
           "add_arguments", "executor_from_args", "result_digest", "LoopbackCluster", "echo_task"]

RAY_INSTALL = "pip install 'eie[cluster]'"
TASK_FILE = "task.json"
RESULT_FILE = "result.json"
DEFAULT_RETRIES = 3


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def result_digest(records) -> str:
    """SHA-256 (hex, 16 digits) of a JSON-able value in canonical form: the
    digest a scale-out run and a serial run must agree on."""
    return hashlib.sha256(_canonical(records).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """A self-contained unit of work (see the module docstring)."""
    kind: str                 # "regress", "build", ...
    name: str                 # unique in its run: the name of its folder
    entry: str                # "module:function", called as function(params, folder) -> dict
    params: dict = field(default_factory=dict)
    seed: int | None = None
    config_digest: str | None = None
    command: str | None = None    # reruns this task alone, locally

    @property
    def digest(self) -> str:
        """Digest of what the task computes (kind, entry, params): equal digests, equal results."""
        return result_digest([self.kind, self.entry, self.params])

    def to_dict(self) -> dict:
        return {**asdict(self), "digest": self.digest}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(**{k: d[k] for k in ("kind", "name", "entry", "params", "seed", "config_digest", "command")})


def _entry(name: str) -> Callable:
    module, _, func = name.partition(":")
    if not func:
        raise ValueError(f"a task entry is 'module:function', not {name!r}")
    return getattr(importlib.import_module(module), func)


def run_task(task: Task | dict, root, *, node: str | None = None) -> dict:
    """Run ``task`` here, in the folder ``<root>/<task name>``; return its envelope.

    The folder is emptied first (a retried task starts clean). An exception in
    the work does not propagate: the envelope says ``ok: false`` and carries the
    error, the folder keeps ``error.txt`` (the traceback)."""
    task = Task.from_dict(task) if isinstance(task, dict) else task
    folder = Path(root) / task.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / TASK_FILE).write_text(json.dumps(task.to_dict(), indent=1) + "\n")
    t0 = time.monotonic()
    result, error = None, None
    try:
        result = _entry(task.entry)(dict(task.params), folder)
    except Exception as e:           # the task failed on its own merits: report it, do not retry
        (folder / "error.txt").write_text(traceback.format_exc())
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}".rstrip(": ")
    envelope = {"task": task.name, "kind": task.kind, "digest": task.digest, "config_digest": task.config_digest,
                "seed": task.seed, "command": task.command, "ok": error is None, "result": result,
                "error": error, "node": node or socket.gethostname(), "pid": os.getpid(),
                "wall_s": round(time.monotonic() - t0, 3), "attempts": 1}
    (folder / RESULT_FILE).write_text(json.dumps(envelope, indent=1) + "\n")
    return envelope


def _lost(task: Task, error: str, attempts: int = 1) -> dict:
    """The envelope of a task that never returned (its worker died more often than it may be retried)."""
    return {"task": task.name, "kind": task.kind, "digest": task.digest, "config_digest": task.config_digest,
            "seed": task.seed, "command": task.command, "ok": False, "result": None, "error": error,
            "node": None, "pid": None, "wall_s": None, "attempts": attempts}


@dataclass
class RunStats:
    """How a :func:`run_tasks` call went: where it ran and how long it took."""
    executor: str             # "serial", "jobs", "ray"
    workers: int              # processes (jobs) or cluster CPUs (ray)
    tasks: int = 0
    done: int = 0
    failed: int = 0
    retries: int = 0          # task starts beyond the first (a worker or node died under a task)
    nodes: int = 1
    wall_s: float = 0.0
    address: str | None = None

    @property
    def tasks_per_s(self) -> float:
        return round(self.tasks / self.wall_s, 3) if self.wall_s else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tasks_per_s": self.tasks_per_s}


class _Progress:
    """Prints ``tasks: D/T done, R running, F failed`` when a count changes."""

    def __init__(self, total: int, log: Callable[[str], None] | None):
        self.total, self.log, self.last, self.t0 = total, log, None, time.monotonic()

    def __call__(self, done: int, running: int, failed: int, retries: int = 0) -> None:
        state = (done, running, failed, retries)
        if self.log is None or state == self.last:
            return
        self.last = state
        extra = f", {retries} retried" if retries else ""
        self.log(f"[{time.monotonic() - self.t0:7.1f}s] tasks: {done}/{self.total} done, {running} running, "
                 f"{failed} failed{extra}")


def run_tasks(tasks: list[Task], root, *, jobs: int = 1, ray: str | None = None,
              max_retries: int = DEFAULT_RETRIES, progress: Callable[[str], None] | None = None,
              on_poll: Callable[[dict], None] | None = None) -> tuple[list[dict], RunStats]:
    """Run ``tasks`` (folders under ``root``) and return ``(envelopes in task order, stats)``.

    ``jobs``: local worker processes (1: in this process); ``ray``: the
    address of a Ray cluster (``"auto"``: the one started on this machine),
    which overrides ``jobs``. ``progress`` receives the progress lines.
    ``on_poll`` (Ray only; for tests) receives ``{task name: [node ids it
    started on]}`` and the set of finished task names each time the driver
    polls the cluster (about twice a second)."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("task names must be unique in a run (each is its folder's name)")
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bar = _Progress(len(tasks), progress)
    t0 = time.monotonic()
    if ray is not None:
        envelopes, stats = _run_ray(tasks, root, ray, max_retries, bar, on_poll)
    elif jobs == 1 or len(tasks) <= 1:
        stats = RunStats("serial", 1)
        envelopes = []
        for k, t in enumerate(tasks):
            bar(k, 1, sum(not e["ok"] for e in envelopes))
            envelopes.append(run_task(t, root))
        stats.done = sum(e["ok"] for e in envelopes)
    else:
        envelopes, stats = _run_pool(tasks, root, jobs, bar)
    stats.tasks = len(tasks)
    stats.failed = sum(not e["ok"] for e in envelopes)
    stats.done = len(tasks) - stats.failed
    stats.wall_s = round(time.monotonic() - t0, 3)
    bar(stats.done, 0, stats.failed, stats.retries)
    return envelopes, stats


def _run_pool(tasks, root, jobs, bar) -> tuple[list[dict], RunStats]:
    """A local process pool (``spawn``: a fresh interpreter per worker, as on a cluster)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait, FIRST_COMPLETED
    stats = RunStats("jobs", jobs)
    results: dict[int, dict] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_task, t.to_dict(), str(root)): k for k, t in enumerate(tasks)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for f in finished:
                k = futures[f]
                try:
                    results[k] = f.result()
                except Exception as e:           # the worker process died (BrokenProcessPool)
                    results[k] = _lost(tasks[k], f"worker process died: {type(e).__name__}: {e}")
            failed = sum(not e["ok"] for e in results.values())
            bar(len(results) - failed, min(jobs, len(pending)), failed)
    return [results[k] for k in range(len(tasks))], stats


# -- Ray ---------------------------------------------------------------------------------------------

def ray_available() -> bool:
    """Whether the ``ray`` package is installed."""
    return importlib.util.find_spec("ray") is not None


_connected: str | None = None


def connect_ray(address: str):
    """Connect this process to the Ray cluster at ``address`` (``auto``: the one
    started on this machine with ``ray start``) and return the ``ray`` module.

    Raises :class:`ValueError` naming the fix when Ray is not installed or no
    cluster answers. Stays connected for later runs to the same address."""
    global _connected
    try:
        import ray
    except ImportError:
        raise ValueError(f"--ray needs Ray, which is not installed: {RAY_INSTALL} (or run locally with "
                         f"--jobs N)") from None
    if ray.is_initialized():
        if _connected == address:
            return ray
        ray.shutdown()
    _check_reachable(address)
    _cluster_messages_to_stderr()
    try:
        ray.init(address=address, log_to_driver=False, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ValueError(f"no Ray cluster answers at --ray {address} ({' '.join(str(e).split())[:300]}); "
                         f"start one with `ray start --head` (see docs/cluster.md) or run locally with "
                         f"--jobs N") from None
    _connected = address
    return ray


def _cluster_messages_to_stderr() -> None:
    """Ray's driver prints the cluster's error messages (a node marked dead, a
    worker killed) on stdout from a background thread, whatever ``log_to_driver``
    says, at any time after the event. stdout holds the one ``--json`` document:
    send those messages to stderr, where the progress goes. Idempotent."""
    from ray._private import worker
    printer = worker.print_to_stdstream
    if getattr(printer, "eie_to_stderr", False):
        return

    def to_stderr(data, ignore_prefix: bool):
        return printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.eie_to_stderr = True
    worker.print_to_stdstream = to_stderr


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (Ray itself waits minutes) when ``HOST:PORT`` (or, for ``auto``,
    ``$RAY_ADDRESS``) does not accept connections."""
    target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
    host, sep, port = target.rpartition(":")
    if not sep or "://" in target or not port.isdigit():
        return                       # "auto" without RAY_ADDRESS, ray:// client addresses: Ray decides
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster answers at {target} ({e}); start one with `ray start --head --port "
                         f"{port}` (see docs/cluster.md), check the address, or run locally with --jobs N") from None


class _Tracker:
    """A Ray actor on the driver's node: which task started on which node (one
    entry per start, so a retried task has several)."""

    def __init__(self):
        self.starts: dict[str, list[str]] = {}

    def started(self, name: str, node: str) -> None:
        self.starts.setdefault(name, []).append(node)

    def snapshot(self) -> dict:
        return self.starts


def _ray_task(task: dict, root: str, tracker) -> dict:
    """The body of a Ray task: say where it started, then :func:`run_task`."""
    import ray
    node = ray.get_runtime_context().get_node_id()
    with _suppress():              # progress is best effort: it never fails a task
        ray.get(tracker.started.remote(task["name"], node), timeout=30)
    return run_task(task, root, node=node)


def _run_ray(tasks, root, address, max_retries, bar, on_poll) -> tuple[list[dict], RunStats]:
    ray = connect_ray(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    # The tracker lives on the driver's node (it needs no CPU), never on a worker node that may die.
    here = ray.get_runtime_context().get_node_id()
    tracker = ray.remote(num_cpus=0)(_Tracker).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()
    remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_task)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    stats = RunStats("ray", int(ray.cluster_resources().get("CPU", 0)), nodes=len(nodes), address=address)
    refs = {remote.remote(t.to_dict(), str(root), tracker): k for k, t in enumerate(tasks)}
    results: dict[int, dict] = {}
    pending = list(refs)
    starts: dict = {}
    while pending:
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        with _suppress():
            starts = ray.get(tracker.snapshot.remote(), timeout=10)
        for ref in ready:
            k = refs[ref]
            attempts = len(starts.get(tasks[k].name, [])) or 1
            try:
                results[k] = {**ray.get(ref), "attempts": attempts}
            except ray.exceptions.RayError as e:      # the worker or node died more than max_retries times
                msg = " ".join(str(e).split())[:300]
                results[k] = _lost(tasks[k], f"lost after {attempts} attempt(s) ({type(e).__name__}): {msg}",
                                   attempts)
        finished = {tasks[k].name for k in results}
        if on_poll is not None:
            on_poll(starts, finished)
        running = sum(1 for name in starts if name not in finished)
        failed = sum(not e["ok"] for e in results.values())
        stats.retries = sum(max(0, len(v) - 1) for v in starts.values())
        bar(len(results) - failed, running, failed, stats.retries)
    with _suppress():
        starts = ray.get(tracker.snapshot.remote(), timeout=10)
        stats.retries = sum(max(0, len(v) - 1) for v in starts.values())
        for k, e in results.items():
            e["attempts"] = max(e["attempts"], len(starts.get(tasks[k].name, [])))
    with _suppress():
        ray.kill(tracker)
    return [results[k] for k in range(len(tasks))], stats


class _suppress:
    """Ignore a failed look-up of the progress tracker (progress is best effort)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, Exception)


# -- command-line options shared by the scale-out commands ------------------------------------------

def add_arguments(parser) -> None:
    """``--jobs N`` and ``--ray ADDRESS``."""
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run the tasks in N local worker processes (default 1: in this process)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="submit the tasks to the Ray cluster at ADDRESS ('auto': the one started on this "
                             f"machine with `ray start`); needs {RAY_INSTALL}; see docs/cluster.md")


def executor_from_args(args) -> dict:
    """``{"jobs", "ray"}`` from parsed ``--jobs``/``--ray``, checked (a bad value names the fix)."""
    jobs = getattr(args, "jobs", 1)
    jobs = 1 if jobs is None else jobs
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    address = getattr(args, "ray", None)
    if address is not None:
        if not address.strip():
            raise ValueError("--ray needs an address (HOST:PORT of the head node, or 'auto')")
        if not ray_available():
            raise ValueError(f"--ray needs Ray, which is not installed: {RAY_INSTALL} (or run locally with "
                             f"--jobs N)")
    return {"jobs": jobs, "ray": address}


# -- a loopback cluster on this machine (tests, benchmarks, trying the Ray path) ------------------------

def echo_task(params: dict, folder: Path) -> dict:
    """A task for checking a cluster: sleeps ``params["sleep"]`` seconds, writes
    ``echo.json`` in its folder and returns ``params["value"]`` with where it
    ran; raises ``ValueError`` when ``params["fail"]`` (a task failing on its
    own merits)."""
    time.sleep(float(params.get("sleep", 0)))
    if params.get("fail"):
        raise ValueError(f"asked to fail (value {params.get('value')!r})")
    (Path(folder) / "echo.json").write_text(json.dumps(params))
    return {"value": params.get("value"), "pid": os.getpid()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    """The processes of session ``sid`` (Linux ``/proc``). A node's ``ray start``
    begins a session; Ray starts each task's worker process in a process group of
    its own (a signal to the node's group misses the tasks) but in that session."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                                  # the process has just ended
        if int(fields[3]) == sid:                     # state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def _signal_session(sid: int, sig) -> None:
    """Send ``sig`` to every process of session ``sid`` (one that has ended is skipped)."""
    for pid in _session_pids(sid):
        with _suppress():
            os.kill(pid, sig)


class LoopbackCluster:
    """A Ray cluster on this machine: a head node and ``workers`` worker nodes,
    each a separate ``ray start`` (own process group, own raylet) with
    ``cpus`` CPUs, on loopback, with its own temporary folder. Worker node
    ``k`` carries the custom resource ``eie_worker_<k>`` so that it can be
    found (:meth:`node_ids`) and killed (:meth:`kill_worker`).

    Never ``ray stop`` (it would stop every Ray on the machine): :meth:`stop`
    ends only the process groups this object started."""

    def __init__(self, workers: int = 2, cpus: int = 1, temp_dir=None, object_store_mb: int = 100):
        import tempfile
        self.workers, self.cpus, self.object_store = workers, cpus, object_store_mb * 1_000_000
        self.temp_dir = Path(temp_dir or tempfile.mkdtemp(prefix="eie-ray-"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.groups: dict[str, int] = {}     # "head" / "worker<k>" -> process group id

    def _ray(self, name: str, *args) -> None:
        import subprocess
        exe = Path(sys.executable).with_name("ray")
        cmd = [str(exe) if exe.exists() else "ray", "start", "--num-cpus", str(self.cpus),
               "--object-store-memory", str(self.object_store), "--temp-dir", str(self.temp_dir),
               "--disable-usage-stats", *args]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        log = self.temp_dir / f"start-{name}.log"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        # `ray start` leads a new session; the raylet and the node's workers stay in its process group.
        self.groups[name] = proc.pid
        if proc.wait(timeout=180) != 0:
            text = log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{text}")

    def start(self) -> "LoopbackCluster":
        self._ray("head", "--head", "--port", str(self.port), "--include-dashboard", "false",
                  "--node-ip-address", "127.0.0.1")
        for k in range(self.workers):
            self._ray(f"worker{k}", "--address", self.address, "--node-ip-address", "127.0.0.1",
                      "--resources", json.dumps({f"eie_worker_{k}": 1}))
        return self

    def node_ids(self) -> dict[int, str]:
        """``{worker k: its Ray node id}`` (this process must be connected)."""
        import ray
        ids = {}
        for node in ray.nodes():
            for k in range(self.workers):
                if node.get("Alive") and f"eie_worker_{k}" in node.get("Resources", {}):
                    ids[k] = node["NodeID"]
        return ids

    def pause_worker(self, k: int, pause: bool = True) -> None:
        """Freeze worker node ``k`` (SIGSTOP to its raylet and the processes running its
        tasks), or let it go on (``pause=False``: SIGCONT). A frozen node finishes
        nothing: a test that sees a task still unfinished after freezing its node
        knows that killing the node kills the task, not a task that has just returned."""
        import signal
        _signal_session(self.groups[f"worker{k}"], signal.SIGSTOP if pause else signal.SIGCONT)

    def kill_worker(self, k: int) -> None:
        """Kill worker node ``k`` at once (SIGKILL to its raylet and the processes running
        its tasks): a node dying mid-run."""
        import signal
        _signal_session(self.groups[f"worker{k}"], signal.SIGKILL)
        with _suppress():
            os.killpg(self.groups.pop(f"worker{k}"), signal.SIGKILL)

    def stop(self) -> None:
        """End every process this cluster started (its process groups and sessions) and remove its folder."""
        import signal
        global _connected
        if _connected is not None:           # this process is connected (to this cluster, or via "auto")
            import ray
            ray.shutdown()
            _connected = None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in self.groups.values():
                with _suppress():
                    os.killpg(pgid, sig)
                _signal_session(pgid, sig)               # the task workers (groups of their own)
            if sig == signal.SIGTERM:
                time.sleep(2)
        self.groups.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":       # pragma: no cover
    sys.exit("eie.cluster is a library; see `eie regress --help`")
