"""Re-measure the baselines a user would pick instead of EIE: PyTorch at batch 1.

For each of the paper's nine FC layers (shape, weight density, activation
density of ``eie.golden.synthetic.PAPER_LAYERS``; uniformly random, seeded)
this times ``y = W x`` for one input vector with

* dense fp32 (``torch.nn.functional.linear``),
* dense fp16 (GPU only; half-precision CPU GEMV is not a path anyone would pick),
* CSR fp32 (``torch.sparse_csr_tensor`` times a dense vector),

and reports the median time per inference in microseconds and the best of the
three. On a CPU each method is timed with torch's default thread count and with
one thread, and the faster is kept (torch's CSR kernel stalls for milliseconds
on a thread barrier with two threads on a busy machine). On a GPU every measurement is a CUDA-graph replay timed with CUDA events
(a batch of replays per sample, so the events' own overhead is amortised); on a
CPU ``time.perf_counter`` around a batch of calls after a warm-up. The issue's
H100 numbers (PyTorch 2.11, best of the three) are
:data:`eie.sim.bench.H100_BASELINE_US`; this script prints them beside its own
when run with ``--json`` or as a table.

Usage::

    python bench/baselines.py [--layers Alex-7 NT-We ...] [--device cpu|cuda]
                              [--threads T] [--budget-s S] [--json] [-o FILE]

Progress goes to stderr; ``--json`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time


def _make(spec, seed: int, device):
    """Random (W dense fp32 on device, x (1, in_len) fp32 on device) of the layer's densities."""
    import torch
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(spec.out_len, spec.in_len, generator=g)
    w *= torch.rand(spec.out_len, spec.in_len, generator=g) < spec.weight_density
    x = torch.rand(1, spec.in_len, generator=g)
    x *= torch.rand(1, spec.in_len, generator=g) < spec.act_density
    return w.to(device), x.to(device)


def _time_cpu(fn, budget_s: float, batch: int = 10) -> float:
    """Median microseconds per call of ``fn`` on the CPU (warm-up, then batches until the budget)."""
    for _ in range(3):
        fn()
    samples = []
    t_end = time.perf_counter() + budget_s
    while len(samples) < 5 or (time.perf_counter() < t_end and len(samples) < 200):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) / batch * 1e6)
    return statistics.median(samples)


def _time_cuda_graph(fn, budget_s: float, replays: int = 20) -> float:
    """Median microseconds per CUDA-graph replay of ``fn`` (events around ``replays`` replays per sample)."""
    import torch
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):                      # warm up (cuBLAS/cuSPARSE handles, workspaces) off the graph
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    for _ in range(10):
        graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    t_end = time.perf_counter() + budget_s
    while len(samples) < 5 or (time.perf_counter() < t_end and len(samples) < 200):
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1e3 / replays)
    return statistics.median(samples)


def measure(names, device: str = "cpu", budget_s: float = 0.5, seed: int = 0, log=None) -> dict:
    """Median microseconds of each method on each layer; see the module docstring."""
    import warnings

    import torch
    import torch.nn.functional as F
    from eie.golden.synthetic import PAPER_LAYERS
    from eie.sim.bench import H100_BASELINE_US

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    thread_options = list(dict.fromkeys([torch.get_num_threads(), 1]))
    timer = _time_cuda_graph if cuda else _time_cpu
    rows = []
    for name in names:
        spec = PAPER_LAYERS[name]
        t0 = time.perf_counter()
        w, x = _make(spec, seed, dev)
        methods = {}
        with torch.no_grad():
            methods["dense_fp32"] = lambda w=w, x=x: F.linear(x, w)
            if cuda:
                w16, x16 = w.half(), x.half()
                methods["dense_fp16"] = lambda w=w16, x=x16: F.linear(x, w)
            csr = w.to_sparse_csr()
            xt = x.t().contiguous()
            methods["csr_fp32"] = lambda a=csr, b=xt: torch.matmul(a, b)
            row = {"layer": name, "in_len": spec.in_len, "out_len": spec.out_len,
                   "weight_density": spec.weight_density, "act_density": spec.act_density,
                   "nnz": int(csr.values().numel()), "dense_fp16_us": None}
            # The CSR result must be the dense one (the two kernels compute the same product).
            ref = F.linear(x, w)
            got = torch.matmul(csr, xt).t()
            if not torch.allclose(ref, got, rtol=1e-3, atol=1e-3):
                raise RuntimeError(f"{name}: CSR and dense results differ; the baseline would be meaningless")
            for method, fn in methods.items():
                # On a CPU, try torch's thread count and one thread: some sparse
                # kernels stall on a barrier with several threads on a busy machine.
                best_us, best_threads = None, None
                for threads in (thread_options if not cuda else [torch.get_num_threads()]):
                    torch.set_num_threads(threads)
                    us = round(timer(fn, budget_s), 2)
                    if best_us is None or us < best_us:
                        best_us, best_threads = us, threads
                torch.set_num_threads(thread_options[0])
                row[f"{method}_us"] = best_us
                row[f"{method}_threads"] = best_threads
                if log:
                    log(f"{name}: {method} {best_us:.1f} us ({best_threads} thread(s))")
        timed = {m: row[f"{m}_us"] for m in methods}
        best = min(timed, key=timed.get)
        row.update(best=best, best_us=timed[best], h100_issue_us=H100_BASELINE_US[name],
                   wall_s=round(time.perf_counter() - t0, 2))
        rows.append(row)
        del w, x, csr, methods
        if cuda:
            torch.cuda.empty_cache()
    return {"device": torch.cuda.get_device_name(dev) if cuda else f"cpu ({platform.processor() or platform.machine()})",
            "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": 1, "seed": seed,
            "timing": "CUDA-graph replay, CUDA events" if cuda else "time.perf_counter, batches of 10 calls",
            "statistic": "median microseconds per inference", "layers": rows}


def main(argv=None) -> int:
    from eie.golden.synthetic import PAPER_LAYERS
    parser = argparse.ArgumentParser(prog="python bench/baselines.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=list(PAPER_LAYERS), choices=list(PAPER_LAYERS),
                        metavar="NAME", help="layers to measure (default: all nine)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads tried besides 1 (default: torch's choice)")
    parser.add_argument("--budget-s", type=float, default=0.5, help="seconds of timing per layer and method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("-o", "--output", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    result = measure(args.layers, device, args.budget_s, args.seed, log)
    text = json.dumps(result, indent=1)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    if args.json:
        print(text)
    else:
        print(f"device: {result['device']}, torch {result['torch']}, {result['threads']} threads, batch 1, "
              f"median us per inference")
        print(f"{'layer':8s} {'dense fp32':>10s} {'dense fp16':>10s} {'CSR fp32':>9s} {'best':>8s} {'H100 (issue)':>12s}")
        for r in result["layers"]:
            fp16 = "-" if r["dense_fp16_us"] is None else f"{r['dense_fp16_us']:.1f}"
            print(f"{r['layer']:8s} {r['dense_fp32_us']:10.1f} {fp16:>10s} {r['csr_fp32_us']:9.1f} "
                  f"{r['best_us']:8.1f} {r['h100_issue_us']:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
