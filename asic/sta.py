"""Static timing analysis of a synthesised EIE netlist with OpenSTA (Debian ``opensta``).

:func:`run_sta` writes a Tcl script (liberties, netlist, one clock on ``clk``,
inputs and outputs constrained to the clock edge with zero external delay, a
10 fF load on every output), runs ``sta -no_init -exit``, and parses the worst
setup path (:func:`parse_path`), the worst slack and the total negative slack.
The minimum period is the clock minus the worst slack (every path is
constrained by the one clock), Fmax its inverse.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["STA_INSTALL", "sta_available", "sta_script", "parse_path", "parse_report", "run_sta"]

STA_INSTALL = "apt-get install -y --no-install-recommends opensta"


def sta_available() -> bool:
    return shutil.which("sta") is not None


def sta_script(*, liberties, netlist, top: str, clock_ns: float, paths: int = 1) -> str:
    lines = [f"read_liberty {lib}" for lib in liberties]
    lines += [
        f"read_verilog {netlist}",
        f"link_design {top}",
        f"create_clock -name clk -period {clock_ns} [get_ports clk]",
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
        "set_output_delay 0 -clock clk [all_outputs]",
        "set_load 0.01 [all_outputs]",
        f"report_checks -path_delay max -digits 3 -group_count {paths} -fields {{fanout cap slew}}",
        "report_worst_slack -digits 3",
        "report_tns -digits 3",
    ]
    return "\n".join(lines) + "\n"


_POINT = re.compile(r"^\s*(?:(?P<fanout>\d+)\s+)?(?:(?P<cap>-?\d+\.\d+)\s+)?(?P<slew>-?\d+\.\d+)\s+"
                    r"(?P<incr>-?\d+\.\d+)\s+(?P<time>-?\d+\.\d+)\s+(?P<edge>[v^])\s+(?P<pin>\S+)"
                    r"(?:\s+\((?P<cell>[^)]+)\))?\s*$")


def parse_path(text: str) -> dict:
    """The first path of an OpenSTA ``report_checks`` text: start and end points,
    every pin on the way (``pin``, ``cell``, ``edge``, ``incr_ns``, ``time_ns``),
    arrival, required and slack in ns. Empty dict when the text has no path."""
    start = re.search(r"Startpoint: (\S+)(?: \(([^)]*)\))?", text)
    if not start:
        return {}
    end = re.search(r"Endpoint: (\S+)(?: \(([^)]*)\))?", text)
    body = text[start.start():]
    points = []
    for line in body.splitlines():
        m = _POINT.match(line)
        if m:
            points.append({"pin": m["pin"], "cell": m["cell"], "edge": "rise" if m["edge"] == "^" else "fall",
                           "incr_ns": float(m["incr"]), "time_ns": float(m["time"])})
        if "data arrival time" in line and points:
            break
    arrival = re.search(r"(-?\d+\.\d+)\s+data arrival time", body)
    required = re.search(r"(-?\d+\.\d+)\s+data required time", body)
    slack = re.search(r"(-?\d+\.\d+)\s+slack \((MET|VIOLATED)\)", body)
    return {"startpoint": start[1], "startpoint_kind": start[2], "endpoint": end[1] if end else None,
            "endpoint_kind": end[2] if end else None, "points": points,
            "arrival_ns": float(arrival[1]) if arrival else None,
            "required_ns": float(required[1]) if required else None,
            "slack_ns": float(slack[1]) if slack else None, "met": slack[2] == "MET" if slack else None}


def parse_report(text: str, clock_ns: float) -> dict:
    """Worst slack, TNS, minimum period and Fmax from the output of :func:`sta_script`."""
    worst = re.search(r"worst slack (-?\d+(\.\d+)?)", text)
    tns = re.search(r"tns (-?\d+(\.\d+)?)", text)
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    path = parse_path(text)
    slack = float(worst[1]) if worst else path.get("slack_ns")
    if slack is None:
        raise RuntimeError("OpenSTA reported no timing path: " + ("; ".join(errors[:5]) or text[-2000:]))
    period = clock_ns - slack
    return {"clock_ns": clock_ns, "worst_slack_ns": slack, "tns_ns": float(tns[1]) if tns else None,
            "min_period_ns": round(period, 3), "fmax_mhz": round(1000.0 / period, 2) if period > 0 else None,
            "met": slack >= 0, "critical_path": path, "errors": errors,
            "warnings": [line for line in text.splitlines() if line.startswith("Warning")][:20]}


def run_sta(netlist, liberties, *, out_dir, top: str = "eie_top", clock_ns: float = 10.0, progress=None,
            timeout: float = 1800) -> dict:
    """Run OpenSTA on ``netlist`` with ``liberties``; returns :func:`parse_report`'s dict
    plus ``seconds``, ``script`` and ``log`` paths. ``FileNotFoundError`` (with the
    install command) when ``sta`` is missing."""
    if not sta_available():
        raise FileNotFoundError(f"OpenSTA (`sta`) is not installed; as root: {STA_INSTALL}")
    say = progress or (lambda message: None)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    script = out / "sta.tcl"
    script.write_text(sta_script(liberties=[Path(p).resolve() for p in liberties], netlist=Path(netlist).resolve(),
                                 top=top, clock_ns=clock_ns))
    say(f"opensta: timing {Path(netlist).name} at {clock_ns} ns")
    start = time.monotonic()
    proc = subprocess.run(["sta", "-no_init", "-exit", str(script)], cwd=out, capture_output=True, text=True,
                          timeout=timeout)
    log = out / "sta.log"
    log.write_text(proc.stdout + proc.stderr)
    result = parse_report(proc.stdout + proc.stderr, clock_ns)
    result.update(seconds=round(time.monotonic() - start, 2), script=str(script), log=str(log))
    say(f"opensta: worst slack {result['worst_slack_ns']} ns, Fmax {result['fmax_mhz']} MHz")
    return result
