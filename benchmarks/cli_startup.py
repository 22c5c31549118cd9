"""Start-up time of the ``hil`` command line against a bare interpreter.

Run ``python benchmarks/cli_startup.py`` (about 10-20 s). It times, in interleaved rounds,
``python -c pass``, ``python -m hil --help`` and, when found next to ``sys.executable``, the ``hil``
console script with ``--help``; prints the medians, the difference to the bare interpreter
(goal: under 0.5 s) and whether ``import hil.cli`` imports torch (it should not).
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
from typing import Any

GOAL_S = 0.5
TORCH_PROBE = "import sys, hil.cli; print('torch' in sys.modules)"


def commands() -> dict[str, list[str]]:
    """The command lines to time, keyed by a label; the baseline comes first."""
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m hil --help": [sys.executable, "-m", "hil", "--help"],
    }
    script = console_script()
    if script is not None:
        cmds["hil --help"] = [str(script), "--help"]
    return cmds


def console_script() -> Path | None:
    """The ``hil`` script next to ``sys.executable`` (a venv's bin/), else the one on PATH, else None."""
    beside = Path(sys.executable).with_name("hil")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("hil")
    return Path(found) if found else None


def run_once(argv: list[str]) -> float:
    """Wall seconds of one run; raises if the command fails."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def torch_imported() -> bool:
    """True when ``import hil.cli`` pulls torch into ``sys.modules`` (checked in a fresh process)."""
    out = subprocess.run([sys.executable, "-c", TORCH_PROBE], check=True, capture_output=True, text=True)
    return out.stdout.strip() == "True"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-' = stdout)")
    args = parser.parse_args(argv)

    cmds = commands()
    for argv_ in cmds.values():  # warm the page cache and .pyc files
        run_once(argv_)
    samples: dict[str, list[float]] = {label: [] for label in cmds}
    labels = list(cmds)
    for index in range(args.runs):
        shift = index % len(labels)
        for label in labels[shift:] + labels[:shift]:
            samples[label].append(run_once(cmds[label]))

    medians = {label: statistics.median(values) for label, values in samples.items()}
    base = medians["python -c pass"]
    pulls_torch = torch_imported()
    lines = [f"CLI start-up, median of {args.runs} interleaved runs each (python {sys.version.split()[0]}, "
             f"load avg {os.getloadavg()[0]:.1f})"]
    lines.append(f"  {'command':<22} {'median s':>9} {'min s':>7} {'max s':>7} {'minus bare':>11}  goal")
    for label, values in samples.items():
        extra = medians[label] - base
        verdict = "" if label == "python -c pass" else f"< {GOAL_S} s {'ok' if extra < GOAL_S else 'MISSED'}"
        row = f"  {label:<22} {medians[label]:>9.3f} {min(values):>7.3f} {max(values):>7.3f} {extra:>+11.3f}  {verdict}"
        lines.append(row.rstrip())
    if "hil --help" in cmds:
        lines.append(f"  hil script: {cmds['hil --help'][0]}")
    else:
        lines.append("  (no hil console script next to sys.executable or on PATH; skipped)")
    verdict = "ok" if not pulls_torch else "MISSED"
    lines.append(f"  import hil.cli imports torch: {pulls_torch}  (goal: False {verdict})")

    to_stdout = args.json == "-"
    print("\n".join(lines), file=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        result: dict[str, Any] = {
            "runs": args.runs, "commands": {k: " ".join(v) for k, v in cmds.items()},
            "samples_s": samples, "median_s": medians,
            "over_bare_s": {k: v - base for k, v in medians.items()},
            "goal_s": GOAL_S, "cli_imports_torch": pulls_torch,
        }
        text = json.dumps(result, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
