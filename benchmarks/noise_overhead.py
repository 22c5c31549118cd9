"""How much time the sim backend's noise costs, measured against the cost of the random draws.

Run ``python benchmarks/noise_overhead.py`` (about 1-3 minutes) or ``--quick`` (a smoke run,
well under 30 s). ``--json PATH`` also writes every number as JSON (``-`` = stdout; the table
then goes to stderr).

Measured in one process, torch threads left at their default:

* RNG-floor ratio, inference: (noisy − clean) / floor for LeNet-5 and the MLP at batch 256 with
  global mixed noise σa = σm = 0.1 at every site (mul-first). "clean" is the same wrapped model
  with a clean `NoiseSpec` (the wrapper still routes every matmul through the backend), "floor"
  is one ``torch.empty(n).normal_(generator=g)`` with n = noised elements per forward. The
  unwrapped model is timed too, so the wrapper's own overhead (clean vs plain) shows.
* The same ratio for a LeNet-5 training step (forward + backward + Adam, batch 256) against a
  two-draw floor (training uses the two-draw form y·M + A) and, for reference, a one-draw floor.
* noisy / clean time for LeNet-5 inference (RNG-bound: ~54 conv/linear FLOPs per noised element)
  and a VGG-ish stack of 3×3 convs (64-128 channels) on 3×32×32 inputs, batch 64 (compute-heavy:
  ~550 FLOPs per noised element; also with noise at conv/linear outputs only, ~1200).

Every case gets warm-up calls; then all cases of a group are timed in rounds, the order rotated
each round, so slow drift of a noisy machine hits every case alike. Each sample times enough
calls to last ``--sample-ms``; a case's time is the median over rounds. The "paired" ratio is the
median of the per-round ratios, which cancels drift between rounds. Other processes competing for
the cores are reported (Linux PSI) and warned about; ``--wait-idle S`` waits for a quiet machine
before each group.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import hil
from hil import NoiseSpec

NOISE = NoiseSpec(sigma_add=0.1, sigma_mul=0.1)
CLEAN = NoiseSpec()
FLOOR_GOAL = 1.2
CONTENTION_WARNING = 0.1
FLOOR_CHUNK = 1 << 22
"""Largest single floor draw (4 Mi elements, 16 MiB); LeNet-5 and the MLP at batch 256 stay below."""
WAITED: list[float] = []
"""Seconds `measure` waited for an idle machine, per group (``--wait-idle``)."""


@dataclass
class Case:
    """One timed callable; ``setup`` runs before each sample, outside the timed region."""

    name: str
    run: Callable[[], object]
    setup: Callable[[], object] | None = None
    number: int = 1
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = 5 %)."""
        if len(self.samples) < 4:
            return (max(self.samples) - min(self.samples)) / self.median
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / self.median


@dataclass(frozen=True)
class Settings:
    """How hard to measure."""

    rounds: int
    warmup: int
    sample_s: float
    conv_batch: int
    wait_idle_s: float = 0.0


def cpu_pressure() -> dict[str, float] | None:
    """Linux PSI "some" line of /proc/pressure/cpu (avg10 in %, total in µs), or None without PSI."""
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as handle:
            first = handle.readline().split()
    except OSError:
        return None
    return {key: float(value) for key, value in (item.split("=") for item in first[1:])}


def wait_for_idle(limit_s: float, threshold: float = 5.0) -> float:
    """Sleep until CPU pressure (avg10) stays under ``threshold`` % for 3 checks, at most ``limit_s``.

    Returns the seconds waited.
    """
    start, quiet = time.monotonic(), 0
    while limit_s > 0 and time.monotonic() - start < limit_s and quiet < 3:
        pressure = cpu_pressure()
        if pressure is None:
            break
        quiet = quiet + 1 if pressure["avg10"] < threshold else 0
        if quiet < 3:
            time.sleep(1.0)
    return time.monotonic() - start


QUICK = Settings(rounds=5, warmup=2, sample_s=0.04, conv_batch=8)
FULL = Settings(rounds=15, warmup=5, sample_s=0.15, conv_batch=64)


def _sample(case: Case) -> float:
    """Seconds per call of ``case.run``, over ``case.number`` calls."""
    if case.setup is not None:
        case.setup()
    start = time.perf_counter()
    for _ in range(case.number):
        case.run()
    return (time.perf_counter() - start) / case.number


def measure(cases: list[Case], settings: Settings) -> tuple[dict[str, Case], float | None]:
    """Warm up and calibrate every case, then time them in interleaved, rotated rounds.

    With ``settings.wait_idle_s`` it first waits (up to that long) for other processes to leave the CPUs.

    Also returns the share of the timed wall time during which some task waited for a CPU
    (None without PSI): well above 0 means other processes competed for the cores.
    """
    waited = wait_for_idle(settings.wait_idle_s)
    for case in cases:
        if case.setup is not None:
            case.setup()
        for _ in range(settings.warmup):
            case.run()
        single = min(_sample(case) for _ in range(2))
        case.number = max(1, round(settings.sample_s / max(single, 1e-9)))
    pressure_start, wall_start = cpu_pressure(), time.perf_counter()
    for index in range(settings.rounds):
        shift = index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.samples.append(_sample(case))
    pressure_end, wall = cpu_pressure(), time.perf_counter() - wall_start
    contention = None
    if pressure_start is not None and pressure_end is not None:
        contention = (pressure_end["total"] - pressure_start["total"]) / 1e6 / wall
    WAITED.append(waited)
    return {case.name: case for case in cases}, contention


def paired_ratio(cases: dict[str, Case], floor: str) -> float:
    """Median over rounds of (noisy − clean) / floor, each round's values taken together."""
    rounds = zip(cases["noisy"].samples, cases["clean"].samples, cases[floor].samples, strict=True)
    return statistics.median((n - c) / f for n, c, f in rounds)


def noised_elements(noisy: hil.NoisyModel, batch: int) -> tuple[int, int]:
    """(all noised elements, noised elements at the input site) of one forward of ``batch``."""
    total = sum(site.numel for site, noise in zip(noisy.sites, noisy.site_noise, strict=True)
                if not noise.is_clean)
    first = noisy.sites[0]
    inputs = first.numel if first.kind == "input" and not noisy.site_noise[0].is_clean else 0
    return total * batch, inputs * batch


def matmul_flops(noisy: hil.NoisyModel, batch: int) -> int:
    """FLOPs (2 per multiply-add) of the Linear/Conv layers of one forward of ``batch``."""
    total = 0
    for site in noisy.sites:
        if not site.is_matmul:
            continue
        layer = noisy.model.get_submodule(site.path)
        if isinstance(layer, nn.Linear):
            fan_in = layer.in_features
        elif isinstance(layer, nn.modules.conv._ConvNd):
            fan_in = layer.in_channels // layer.groups * math.prod(layer.kernel_size)
        else:
            continue
        total += 2 * site.numel * fan_in
    return total * batch


def floor_draw(n: int, generator: torch.Generator, draws: int = 1) -> Callable[[], object]:
    """``draws`` in-place normal draws of ``n`` elements each: the RNG cost of the noise.

    Above `FLOOR_CHUNK` elements each draw is split into chunks of at most that size: a larger
    ``torch.empty`` is a fresh mmap on every call (glibc caps its reuse threshold at 32 MiB), and
    its page faults would inflate the floor by ~1.8× for the conv stack's 150 MB.
    """
    sizes = [FLOOR_CHUNK] * (n // FLOOR_CHUNK) + ([n % FLOOR_CHUNK] if n % FLOOR_CHUNK else [])

    def run() -> None:
        for _ in range(draws):
            for size in sizes:
                torch.empty(size).normal_(generator=generator)

    return run


def conv_stack() -> nn.Sequential:
    """A VGG-ish stack of 3×3 convs (64-128 channels) for 3×32×32 inputs: compute-bound."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]

    return nn.Sequential(
        *block(3, 64), *block(64, 128), nn.MaxPool2d(2),          # 32×32
        *block(128, 128), *block(128, 128), nn.MaxPool2d(2),      # 16×16
        *block(128, 128), nn.MaxPool2d(2),                        # 8×8
        nn.Flatten(), nn.Linear(128 * 4 * 4, 10),
    )


def inference_group(model: nn.Module, x: torch.Tensor, settings: Settings, generator: torch.Generator,
                    variants: dict[str, NoiseSpec] | None = None) -> dict[str, Any]:
    """plain / clean / noisy / one-draw floor for no-grad inference, plus noisy ``variants``."""
    noisy = hil.wrap(model, "sim", NOISE, example_input=x[:2])
    noisy.eval()
    n, _ = noised_elements(noisy, x.shape[0])

    def use(spec: NoiseSpec) -> Callable[[], None]:
        return lambda: noisy.set_noise(spec)

    cases = [
        Case("plain", lambda: model(x)),
        Case("clean", lambda: noisy(x), setup=use(CLEAN)),
        Case("noisy", lambda: noisy(x), setup=use(NOISE)),
        Case("floor", floor_draw(n, generator)),
    ]
    variant_elements: dict[str, int] = {}
    for name, spec in (variants or {}).items():
        cases.append(Case(name, lambda: noisy(x), setup=use(spec)))
        noisy.set_noise(spec)
        variant_elements[name] = noised_elements(noisy, x.shape[0])[0]
    with torch.no_grad():
        timed, contention = measure(cases, settings)
    summary = _summary(timed, n, {"floor": "floor"}, contention)
    summary["matmul_gflop"] = matmul_flops(noisy, x.shape[0]) / 1e9
    clean = timed["clean"].median
    summary["variants"] = {name: {"noised_elements": count, "over_clean": timed[name].median / clean}
                           for name, count in variant_elements.items()}
    return summary


def training_group(model: nn.Module, x: torch.Tensor, settings: Settings,
                   generator: torch.Generator) -> dict[str, Any]:
    """plain / clean / noisy training steps and one- and two-draw floors."""
    noisy = hil.wrap(model, "sim", NOISE, example_input=x[:2])
    noisy.train()
    target = torch.randint(0, 10, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    n, n_input = noised_elements(noisy, x.shape[0])

    def step(net: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], object]:
        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), target).backward()
            optimizer.step()

        return run

    plain_step = step(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    wrapped_step = step(noisy, torch.optim.Adam(model.parameters(), lr=1e-3))
    cases = [
        Case("plain", plain_step),
        Case("clean", wrapped_step, setup=lambda: noisy.set_noise(CLEAN)),
        Case("noisy", wrapped_step, setup=lambda: noisy.set_noise(NOISE)),
        Case("floor2", floor_draw(n, generator, draws=2)),
        Case("floor1", floor_draw(n, generator)),
    ]
    timed, contention = measure(cases, settings)
    summary = _summary(timed, n, {"floor2": "floor2", "floor1": "floor1"}, contention)
    summary["input_elements"] = n_input
    return summary


def _summary(timed: dict[str, Case], n: int, floors: dict[str, str], contention: float | None) -> dict[str, Any]:
    clean, noisy = timed["clean"].median, timed["noisy"].median
    result: dict[str, Any] = {
        "cpu_contention": contention,
        "noised_elements": n,
        "times_ms": {name: case.median * 1e3 for name, case in timed.items()},
        "samples_ms": {name: [value * 1e3 for value in case.samples] for name, case in timed.items()},
        "spread": {name: case.spread for name, case in timed.items()},
        "calls_per_sample": {name: case.number for name, case in timed.items()},
        "rounds": len(timed["clean"].samples),
        "noisy_over_clean": noisy / clean,
        "wrapper_overhead": clean / timed["plain"].median - 1.0,
    }
    for label, floor in floors.items():
        result[f"ratio_{label}"] = (noisy - clean) / timed[floor].median
        result[f"paired_ratio_{label}"] = paired_ratio(timed, floor)
    return result


def _ms(value: float) -> str:
    return f"{value:9.3f}"


def _spread_row(r: dict[str, Any], names: tuple[str, ...], indent: int) -> str:
    spread = r["spread"]
    return " " * indent + "".join(f"{f'({spread[k]:.0%})':>10}" for k in names)


def _verdict(ratio: float) -> str:
    return f"goal ≤ {FLOOR_GOAL}: {'ok' if ratio <= FLOOR_GOAL else 'MISSED'}"


def _contention(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def render(results: dict[str, Any]) -> str:
    """The human-readable report."""
    meta, inference, training, conv = results["meta"], results["inference"], results["training"], results["conv"]
    lines = [
        f"hil noise overhead — {meta['date']}, torch {meta['torch']}, {meta['threads']} threads, "
        f"{meta['cpu_count']} CPUs, {meta['mode']} run, load avg {meta['load_start']} → {meta['load_end']}",
        "noise: global mixed σa = σm = 0.1 at all sites (mul-first). Times: ms per call, median of "
        f"{meta['rounds']} interleaved rounds;",
        "(x%) under a time = IQR/median; contention = share of the time other tasks waited for a CPU (PSI).",
        "",
        "1. Inference, no grad: RNG-floor ratio = (noisy − clean) / floor; floor = one normal_ draw of n elements",
        f"   {'model':<7} {'batch':>5} {'n':>9} {'plain':>9} {'clean':>9} {'noisy':>9} {'floor':>9} "
        f"{'wrapper':>8} {'ratio':>6} {'paired':>6} {'contention':>10}",
    ]
    for name, r in inference.items():
        t = r["times_ms"]
        lines.append(
            f"   {name:<7} {r['batch']:>5} {r['noised_elements']:>9} {_ms(t['plain'])} {_ms(t['clean'])} "
            f"{_ms(t['noisy'])} {_ms(t['floor'])} {r['wrapper_overhead']:>+8.0%} {r['ratio_floor']:>6.2f} "
            f"{r['paired_ratio_floor']:>6.2f} {_contention(r['cpu_contention']):>10}   {_verdict(r['ratio_floor'])}"
        )
        lines.append(_spread_row(r, ("plain", "clean", "noisy", "floor"), 26))
    lines += [
        "   wrapper = clean wrapped / unwrapped − 1; paired = median over rounds of each round's ratio",
        "",
        f"2. Training step (forward + backward + Adam), lenet5, batch {training['batch']}, "
        f"n = {training['noised_elements']} noised elements",
        "   floor2 = two normal_ draws of n elements each (training uses the two-draw form y·M + A);",
        "   floor1 = one draw of n, for reference. The input site has no grad and takes the one-draw",
        f"   inference form, so the backend draws 2n − {training['input_elements']} normals per step.",
        f"   {'plain':>9} {'clean':>9} {'noisy':>9} {'floor2':>9} {'floor1':>9} {'wrapper':>8} {'contention':>10}",
    ]
    t = training["times_ms"]
    lines += [
        f"   {_ms(t['plain'])} {_ms(t['clean'])} {_ms(t['noisy'])} {_ms(t['floor2'])} {_ms(t['floor1'])} "
        f"{training['wrapper_overhead']:>+8.0%} {_contention(training['cpu_contention']):>10}",
        _spread_row(training, ("plain", "clean", "noisy", "floor2", "floor1"), 2),
        f"   ratio vs two-draw floor: {training['ratio_floor2']:.2f} (paired {training['paired_ratio_floor2']:.2f})"
        f"   {_verdict(training['ratio_floor2'])}",
        f"   ratio vs one-draw floor: {training['ratio_floor1']:.2f} (paired {training['paired_ratio_floor1']:.2f})",
        "",
        "3. noisy / clean time, inference: RNG-bound vs compute-heavy",
        f"   {'model':<27} {'batch':>5} {'n':>9} {'plain':>9} {'clean':>9} {'noisy':>9} {'floor':>9} "
        f"{'noisy/clean':>11} {'floor ratio':>11} {'contention':>10} {'FLOP/n':>7}",
    ]
    for label, r in (("lenet5 1×28×28", inference["lenet5"]), ("vgg-ish conv stack 3×32×32", conv)):
        t = r["times_ms"]
        lines.append(
            f"   {label:<27} {r['batch']:>5} {r['noised_elements']:>9} {_ms(t['plain'])} {_ms(t['clean'])} "
            f"{_ms(t['noisy'])} {_ms(t['floor'])} {r['noisy_over_clean']:>11.2f} {r['ratio_floor']:>11.2f} "
            f"{_contention(r['cpu_contention']):>10} {r['matmul_gflop'] * 1e9 / r['noised_elements']:>7.0f}"
        )
    matmul = conv["variants"]["noisy_matmul"]
    lines += [
        f"   {'  same, conv/linear sites':<27} {'':>5} {matmul['noised_elements']:>9} {'':>9} {'':>9} "
        f"{_ms(conv['times_ms']['noisy_matmul'])} {'':>9} {matmul['over_clean']:>11.2f} {'':>11} {'':>10} "
        f"{conv['matmul_gflop'] * 1e9 / matmul['noised_elements']:>7.0f}",
        "   lenet5 row: the same measurement as in 1.; floor ratio = (noisy − clean) / one-draw floor;",
        "   FLOP/n = conv/linear FLOPs per noised element (the higher, the less the noise matters).",
        f"   The conv stack's floor draws n in chunks of ≤ {FLOOR_CHUNK} elements: a torch.empty over 32 MiB is a",
        "   fresh mmap on every call, and its page faults would inflate the floor (~1.8× at 150 MB).",
    ]
    busy = [v for v in (*(r["cpu_contention"] for r in inference.values()), training["cpu_contention"],
                        conv["cpu_contention"]) if v is not None and v > CONTENTION_WARNING]
    if busy:
        lines += ["", f"WARNING: other processes competed for the CPUs (contention up to {max(busy):.0%}); with "
                  "torch's default threads a busy core slows parallel ops many times over: re-run on an idle machine."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, small conv batch (< 30 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON ('-' = stdout)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per group (default 15, quick 5)")
    parser.add_argument("--sample-ms", type=float, help="target duration of one sample (default 150, quick 40)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each group wait up to S seconds for CPU pressure (PSI avg10) under 5%%")
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    settings = replace(settings, wait_idle_s=args.wait_idle)
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    if args.sample_ms:
        settings = replace(settings, sample_s=args.sample_ms / 1e3)

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    batch = 256
    mnist = torch.rand(batch, 1, 28, 28)
    results: dict[str, Any] = {"inference": {}}
    for name in ("lenet5", "mlp"):
        results["inference"][name] = inference_group(hil.create_model(name), mnist, settings, generator)
        results["inference"][name]["batch"] = batch
    results["training"] = training_group(hil.create_model("lenet5"), mnist, settings, generator)
    results["training"]["batch"] = batch
    images = torch.rand(settings.conv_batch, 3, 32, 32)
    results["conv"] = inference_group(conv_stack(), images, settings, generator,
                                      {"noisy_matmul": NoiseSpec(sigma_add=0.1, sigma_mul=0.1, sites="matmul")})
    results["conv"]["batch"] = settings.conv_batch
    results["meta"] = {
        "date": date.today().isoformat(),
        "torch": torch.__version__,
        "hil": hil.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "mode": "quick" if args.quick else "full",
        "rounds": settings.rounds,
        "sample_ms": settings.sample_s * 1e3,
        "wait_idle_s": settings.wait_idle_s,
        "waited_s": [round(value, 1) for value in WAITED],
        "load_start": f"{load_start:.1f}",
        "load_end": f"{os.getloadavg()[0]:.1f}",
        "goal_floor_ratio": FLOOR_GOAL,
    }
    report = render(results) + f"\n\ntotal benchmark time {time.perf_counter() - started:.0f} s"
    to_stdout = args.json == "-"
    print(report, file=sys.stderr if to_stdout else sys.stdout)
    if args.json:
        text = json.dumps(results, indent=2)
        if to_stdout:
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
