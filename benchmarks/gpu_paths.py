"""The CUDA paths in one run: noisy/clean throughput on ``gpu``, host syncs per forward, walk speed GPU vs CPU.

Measured, each in this one process (issue 17's GPU part; run it where CUDA is present):

* **noisy/clean throughput** on ``gpu`` (σa = σm = 0.1 at every site, mul-first) for LeNet-5 (batch 4096,
  inference, and a training step at batch 1024) and a VGG-ish 3×3 conv stack on 3×32×32 (batch 512);
  CUDA-event timing, median of ``--rounds`` samples, noisy and clean alternating. Goal ≥ 0.8.
* **host syncs**: a noisy forward, a noisy training step and a twin forward run under
  ``torch.cuda.set_sync_debug_mode("error")``, which raises at the first operation that waits for the
  GPU; "none" means the noise is drawn on the device with no sync per site. The twin waits once per
  layer by design (whether any output saturated decides the re-runs, as on the device), so it reports
  a sync; tests/backends/test_twin.py counts that it is the only one.
* **walk speed**: the LeNet-5 inference walk of `walk_speed.py` (12 sites × 20 σ × 5 repeats, cached
  prefix, mnist5k test set, [0, 1] pixels) on ``sim`` (CPU, all threads) vs ``gpu``; and the digital
  twin of an emulated chip on the CPU vs ``#on=cuda`` (12 sites × 4 σ × 2 repeats, 500 samples).
  Accuracies differ between devices (other random streams), so only time is compared; each device's
  walk is run twice with one seed and must give identical accuracies (reproducibility on CUDA).

    python benchmarks/gpu_paths.py [--rounds 20] [--skip-twin]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from noise_overhead import conv_stack
from torch import nn
from walk_speed import timed_walk

from hil.data import load_dataset
from hil.models import create_model
from hil.noise import NoiseSpec
from hil.noisy_model import NoisyModel, wrap
from hil.studies.walk import InferenceWalk
from hil.walking.grid import log_grid
from hil.walking.sweep import SweepSpec

GPU = "gpu:seed=0"  # module-level so a CPU smoke run can point them elsewhere
CUDA = "cuda"
ON_CUDA = "#on=cuda"
NOISE = NoiseSpec(sigma_add=0.1, sigma_mul=0.1)
CLEAN = NoiseSpec()


def _cuda_ms(run: Callable[[], None], calls: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls


def _ratio(noisy: NoisyModel, step: Callable[[], None], rounds: int, calls: int = 5) -> tuple[float, float]:
    """Median ms per call with noise and clean, alternating rounds → (noisy ms, clean ms)."""
    times: dict[bool, list[float]] = {True: [], False: []}
    for spec in (NOISE, CLEAN):  # warm both
        noisy.set_noise(spec)
        _cuda_ms(step, 3)
    for _ in range(rounds):
        for with_noise in (True, False):
            noisy.set_noise(NOISE if with_noise else CLEAN)
            times[with_noise].append(_cuda_ms(step, calls))
    return statistics.median(times[True]), statistics.median(times[False])


def _inference(model: nn.Module, x: torch.Tensor) -> tuple[NoisyModel, Callable[[], None]]:
    noisy = wrap(model, GPU, NOISE, example_input=x[:2]).eval()

    def step() -> None:
        with torch.no_grad():
            noisy(x)

    return noisy, step


def _training(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[NoisyModel, Callable[[], None]]:
    noisy = wrap(model, GPU, NOISE, example_input=x[:2]).train()
    optimiser = torch.optim.Adam(noisy.parameters(), lr=1e-3)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(noisy(x), y).backward()
        optimiser.step()

    return noisy, step


def throughput(rounds: int) -> None:
    """Noisy/clean time on ``gpu`` for inference and a training step."""
    cuda = torch.device(CUDA)
    digits = torch.rand(4096, 1, 28, 28, device=cuda)
    labels = torch.randint(0, 10, (1024,), device=cuda)
    images = torch.rand(512, 3, 32, 32, device=cuda)
    torch.manual_seed(0)
    cases = {
        "LeNet-5 inference, batch 4096": _inference(create_model("lenet5"), digits),
        "LeNet-5 training step, batch 1024": _training(create_model("lenet5"), digits[:1024], labels),
        "VGG-ish conv stack inference, batch 512": _inference(conv_stack(), images),
    }
    print("noisy/clean throughput on gpu (σa = σm = 0.1 at every site; goal ≥ 0.8)")
    for name, (noisy, step) in cases.items():
        noisy_ms, clean_ms = _ratio(noisy, step, rounds)
        print(f"  {name:42s} noisy {noisy_ms:8.3f} ms  clean {clean_ms:8.3f} ms  "
              f"noisy/clean throughput {clean_ms / noisy_ms:5.2f}")


def _first_sync(run: Callable[[], None]) -> str:
    run()  # warm-up outside the check: first calls allocate and may query the device
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run()
    except RuntimeError as error:
        return "SYNC: " + str(error).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return "none"


def host_syncs(twin_profile: Path | None) -> None:
    """Whether a noisy forward / training step / twin forward waits for the GPU anywhere."""
    cuda = torch.device(CUDA)
    digits = torch.rand(256, 1, 28, 28, device=cuda)
    labels = torch.randint(0, 10, (256,), device=cuda)
    torch.manual_seed(0)
    _, forward = _inference(create_model("lenet5"), digits)
    _, training = _training(create_model("lenet5"), digits, labels)
    print("host syncs under torch.cuda.set_sync_debug_mode('error')")
    print(f"  gpu noisy forward (LeNet-5, 12 sites)      {_first_sync(forward)}")
    print(f"  gpu noisy training step                     {_first_sync(training)}")
    if twin_profile is not None:
        twin = wrap(create_model("lenet5"), f"twin:{twin_profile}{ON_CUDA}", example_input=digits[:2]).eval()

        def twin_forward() -> None:
            with torch.no_grad():
                twin(digits)

        print(f"  twin#on=cuda forward (LeNet-5)              {_first_sync(twin_forward)}")


def _walk_seconds(model: nn.Module, backend: str, x: torch.Tensor, y: torch.Tensor,
                  spec: SweepSpec) -> tuple[float, dict]:
    walk = InferenceWalk(wrap(model, backend), x, y, spec)
    warm = InferenceWalk(wrap(model, backend), x, y, replace(spec, sigmas=spec.sigmas[:1], repeats=1))
    warm.evaluate(warm.points[:1])
    return timed_walk(walk)


def walk_speed(twin_profile: Path | None) -> None:
    """The same walk on the CPU and on CUDA; each twice, to check reproducibility on its device."""
    data = load_dataset("mnist5k", seed=0)
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    spec = SweepSpec(noise="add", sigmas=log_grid(1e-1, 1e2, 20), sites="all", repeats=5, batch_size=1000)
    print(f"walk speed — LeNet-5, mnist5k test set ({len(data.test_y)} samples, [0, 1] pixels), "
          f"{len(spec.sigmas)} σ × {spec.repeats} repeats at every site, cached prefix, "
          f"CPU {torch.get_num_threads()} threads")
    _walk_pair(model, {"sim cpu": "sim:seed=0", "gpu cuda": GPU}, data.test_x, data.test_y, spec)
    if twin_profile is not None:
        small = replace(spec, sigmas=log_grid(1e-1, 1e2, 4), repeats=2, batch_size=500)
        print(f"walk speed — LeNet-5 on the twin of an emulated chip, 500 samples, {len(small.sigmas)} σ × "
              f"{small.repeats} repeats at every site")
        _walk_pair(model, {"twin cpu": f"twin:{twin_profile}", "twin cuda": f"twin:{twin_profile}{ON_CUDA}"},
                   data.test_x[:500], data.test_y[:500], small)


def _walk_pair(model: nn.Module, backends: dict[str, str], x: torch.Tensor, y: torch.Tensor,
               spec: SweepSpec) -> None:
    """``backends``: label → spec, the CPU one first, then the CUDA one."""
    seconds = []
    for label, backend in backends.items():
        first_s, first = _walk_seconds(model, backend, x, y, spec)
        second_s, second = _walk_seconds(model, backend, x, y, spec)
        seconds.append(min(first_s, second_s))
        same = sum(first[key] == second[key] for key in first)
        print(f"  {label:10s} {seconds[-1]:8.2f} s  ({1e3 * seconds[-1] / len(first):7.2f} ms/point)  "
              f"reruns identical: {same}/{len(first)}")
    cpu, cuda = seconds
    print(f"  CUDA speed-up over CPU: {cpu / cuda:.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--skip-twin", action="store_true", help="no emulated chip (its calibration takes a while)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_paths.py needs CUDA: torch.cuda.is_available() is False here")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, TF32 matmul "
          f"{torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 {torch.backends.cudnn.allow_tf32}")
    profile = None
    if not args.skip_twin:
        from emulated_device import calibrated_chip

        started = time.perf_counter()
        _, profile = calibrated_chip(Path(tempfile.mkdtemp()), sigma_add=0.5)
        print(f"(emulated chip calibrated in {time.perf_counter() - started:.0f} s)")
    throughput(args.rounds)
    host_syncs(profile)
    walk_speed(profile)


if __name__ == "__main__":
    main()
