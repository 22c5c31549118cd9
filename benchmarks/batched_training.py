"""Would batching K trainings in one pass pay on this machine? K networks stacked with torch.func vs K sequential.

Measures the question behind issue 17 part 3 before building it: one Adam step of K = 8 networks that differ only in
their weights, (a) as one ``vmap`` over ``stack_module_state`` parameters (one forward/backward; convolutions
become grouped convolutions, linears batched matmuls), (b) as 8 ordinary steps one after the other. Clean
networks: hil's noise sites are left out, so this is an upper bound on what batching could give a
train-per-point walk (the walk's noise would add per-network draws to both). Random inputs (MNIST shape
1×28×28, batch 128); the ratio does not depend on the data. Medians of 5 runs of 10 steps.

    python benchmarks/batched_training.py [--device cuda] [--k 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from hil.models import create_model


def _timed(step, device: str, repeats: int = 5, steps: int = 10) -> float:  # noqa: ANN001
    step()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    k, device, shape = args.k, args.device, (1, 28, 28)
    print(f"batched training — {k} networks, batch {args.batch}, torch {torch.__version__}, {device}, "
          f"{torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}")
    for name in ("mlp", "lenet5"):
        torch.manual_seed(0)
        models = [create_model(name, bn=False, input_shape=shape, num_classes=10).to(device) for _ in range(k)]
        params, buffers = stack_module_state(models)  # type: ignore[arg-type]
        template = create_model(name, bn=False, input_shape=shape, num_classes=10).to("meta")
        xs = torch.randn(k, args.batch, *shape, device=device)
        ys = torch.randint(0, 10, (k, args.batch), device=device)

        def loss_of(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor,
                    template: torch.nn.Module = template) -> torch.Tensor:
            return F.cross_entropy(functional_call(template, (p, b), (x,)), y)

        stacked = torch.optim.Adam(params.values(), lr=1e-3)
        each = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]

        def batched(params: dict = params, buffers: dict = buffers, stacked: torch.optim.Optimizer = stacked,
                    xs: torch.Tensor = xs, ys: torch.Tensor = ys, loss_of=loss_of) -> None:  # noqa: ANN001
            losses = vmap(loss_of)(params, buffers, xs, ys)
            stacked.zero_grad()
            losses.sum().backward()
            stacked.step()

        def sequential(models: list = models, each: list = each, xs: torch.Tensor = xs,
                       ys: torch.Tensor = ys) -> None:
            for index, model in enumerate(models):
                loss = F.cross_entropy(model(xs[index]), ys[index])
                each[index].zero_grad()
                loss.backward()
                each[index].step()

        one, many = _timed(batched, device), _timed(sequential, device)
        print(f"  {name:<7} batched {one * 1e3:7.2f} ms/step  sequential {many * 1e3:7.2f} ms/step  "
              f"speed-up {many / one:.2f}×   (goal ≥ 2× on CPU, ≥ 5× on a GPU)")


if __name__ == "__main__":
    main()
