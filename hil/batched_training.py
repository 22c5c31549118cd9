"""Batched training: K networks that differ only in their noise and seed, trained in one pass.

A train-per-point walk trains one network per (site, σ, repeat). `train_batched` trains K of them at
once: the K networks' weights are stacked (`hil.stacked_networks`), every layer runs as one batched
matmul (or one grouped convolution) over the K networks' mini-batches, and network ``i``'s noise is drawn
by its own backend on its own block. Everything else is what `hil.training.train` does for each network
alone — its initial weights, data split, shuffle, noise stream, learning-rate schedule, Adam, end-of-run
tests and checkpoint — so each result equals training it alone up to float rounding (the batched
matmul sums in another order; `tests/test_batched_training.py` checks weights, losses and accuracies).

Not batched: BatchNorm, quantised (Brevitas) and dropout models, calibrated or fine-tuning runs, resumes,
and backends other than the exact emulators ``sim``/``gpu`` (a twin or a chip is not a batched matmul).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hil.config import TrainConfig
from hil.errors import CheckpointError, ConfigError
from hil.evaluation import accuracy
from hil.noisy_model import NoisyModel
from hil.seeding import derive_seed
from hil.stacked_networks import ConvMode, StackedBackend, check_stackable, stack_networks, unstack_into
from hil.training import (
    EpochRecord,
    TrainResult,
    _check_output_dir,
    _remove_old_run,
    clamp_weights,
    epoch_order,
    finish_run,
    load_training_data,
    run_metadata,
    save_epoch,
    start_epoch,
    steps_per_epoch,
)

BATCHABLE_BACKENDS = ("sim", "gpu")
"""Backends whose matmul is exact, so K networks' matmuls can run as one."""


def check_batchable(configs: Sequence[TrainConfig]) -> TrainConfig:
    """The settings the K runs share; refuses runs that cannot be trained together.

    Raises:
        ConfigError: No runs, runs that differ in more than noise and seed, or settings batched
            training does not cover (BatchNorm, quantisation, calibration, ``--init``, a non-emulator backend).
    """
    from hil.backends.spec import parse_backend_spec

    if not configs:
        raise ConfigError("batched training needs at least one run")
    base = configs[0]
    for config in configs[1:]:
        if replace(config, noise=base.noise, seed=base.seed) != base:
            raise ConfigError("batched training trains networks that differ only in their noise and seed; "
                              "these runs differ in other settings — train them separately")
    unsupported = [flag for flag, used in (("--bn", base.bn), ("--quant", base.quant is not None),
                                           ("--calibration", base.calibration is not None),
                                           ("--init", base.init is not None)) if used]
    if unsupported:
        raise ConfigError(f"batched training does not cover {', '.join(unsupported)}: use --batch-points 1")
    backend = parse_backend_spec(base.backend).name
    if backend not in BATCHABLE_BACKENDS:
        raise ConfigError(f"batched training runs on {' or '.join(BATCHABLE_BACKENDS)}, not {backend!r} "
                          f"(its matmuls are not exact): use --batch-points 1")
    return base


def train_batched(configs: Sequence[TrainConfig], outs: Sequence[str | Path], *, overwrite: bool = False,
                  keep_epochs: bool = True, conv_mode: ConvMode | None = None) -> list[TrainResult]:
    """Train ``configs`` (same settings but noise and seed) in one batched pass; run ``i`` is written to ``outs[i]``.

    Args:
        configs: The runs; `check_batchable` says which can be trained together.
        outs: One checkpoint directory per run, as `hil.training.train`'s ``out``.
        overwrite: Allow replacing checkpoints already there.
        keep_epochs: Write every run's checkpoint after every epoch.
        conv_mode: How convolutions run (default: grouped on CUDA, one per network elsewhere).

    Returns:
        One `TrainResult` per run, as `hil.training.train` would return it.

    Raises:
        HilError: Runs that cannot be batched, bad output directories, missing data, a run that diverged.
    """
    from hil.backends import get_backend
    from hil.models import create_model
    from hil.noisy_model import wrap

    base = check_batchable(configs)
    folders = [Path(out) for out in outs]
    if len(folders) != len(configs) or len({folder.resolve() for folder in folders}) != len(folders):
        raise ConfigError(f"batched training needs one distinct output directory per run "
                          f"({len(configs)} runs, {len(set(folders))} directories)")
    for folder in folders:
        _check_output_dir(folder, overwrite, None)
    datasets = [load_training_data(config) for config in configs]
    if len({len(data.train_x) for data in datasets}) != 1:
        raise ConfigError("batched training needs training sets of one size; these runs' splits differ")
    models = []
    for config, data in zip(configs, datasets, strict=True):
        torch.manual_seed(derive_seed(config.seed, "init"))
        models.append(create_model(config.model, bn=config.bn, input_shape=data.input_shape,
                                   num_classes=data.num_classes))
    check_stackable(models[0], base.model)
    backends = [get_backend(config.backend) for config in configs]
    try:
        networks = [wrap(model, backend, config.noise) for model, backend, config in zip(models, backends, configs,
                                                                                         strict=True)]
        stacked = NoisyModel(stack_networks([network.model for network in networks]),
                             StackedBackend(backends, [network.site_noise for network in networks], conv_mode))
        stacked.adopt_sites(networks[0].sites)
        optimizer = torch.optim.Adam(stacked.model.parameters(), lr=base.lr)
        metadata = [run_metadata(config, network, config.noise, None, data)
                    for config, network, data in zip(configs, networks, datasets, strict=True)]
        histories: list[list[EpochRecord]] = [[] for _ in configs]
        for folder in folders:
            if overwrite and folder.is_dir():
                _remove_old_run(folder)
        for epoch in range(base.epochs):
            records = _train_epoch(stacked, optimizer, datasets, configs, epoch, networks)
            for index, record in enumerate(records):
                histories[index].append(record)
                if keep_epochs:
                    save_epoch(folders[index], networks[index].model, metadata[index], configs[index],
                               histories[index], network_optimizer(optimizer, index, networks[index].model))
        return [finish_run(out, network, network_optimizer(optimizer, index, network.model), metadata[index],
                           configs[index], histories[index], datasets[index])
                for index, (out, network) in enumerate(zip(folders, networks, strict=True))]
    finally:
        for backend in backends:
            backend.close()


def network_optimizer(stacked: torch.optim.Optimizer, index: int, model: torch.nn.Module) -> torch.optim.Adam:
    """An Adam over ``model`` holding network ``index``'s slice of the stacked optimizer's state (checkpoints)."""
    optimizer = torch.optim.Adam(model.parameters())
    state = stacked.state_dict()
    per_parameter = {key: {name: value[index].clone() if isinstance(value, torch.Tensor) and value.dim() else value
                           for name, value in entry.items()}
                     for key, entry in state["state"].items()}
    optimizer.load_state_dict({"state": per_parameter, "param_groups": state["param_groups"]})
    return optimizer


def _train_epoch(stacked: NoisyModel, optimizer: torch.optim.Optimizer, datasets: Sequence[Any],
                 configs: Sequence[TrainConfig], epoch: int, networks: Sequence[NoisyModel]) -> list[EpochRecord]:
    """One epoch of every network at once; the networks' own models get the weights for testing."""
    started = time.perf_counter()
    base, count = configs[0], len(configs)
    lr = start_epoch(optimizer, base, epoch)
    samples = len(datasets[0].train_x)
    orders = [epoch_order(config, epoch, samples) for config in configs]
    backend = stacked.backend
    assert isinstance(backend, StackedBackend)
    backend.reseed_each([derive_seed(config.seed, "noise", epoch) for config in configs])
    stacked.train()
    total_loss = torch.zeros(count, dtype=torch.float64)
    correct = torch.zeros(count, dtype=torch.int64)
    seen = 0
    for step in range(steps_per_epoch(samples, base.batch_size)):
        picks = [order[step * base.batch_size:(step + 1) * base.batch_size] for order in orders]
        x = torch.cat([data.train_x[pick] for data, pick in zip(datasets, picks, strict=True)]).to(backend.device)
        y = torch.cat([data.train_y[pick] for data, pick in zip(datasets, picks, strict=True)]).to(backend.device)
        logits = stacked(x)
        rows = len(picks[0])
        losses = F.cross_entropy(logits, y, reduction="none").view(count, rows).mean(dim=1)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            network = int((~finite).nonzero()[0])
            raise CheckpointError(f"training diverged at epoch {epoch + 1} (run {network + 1} of {count}, seed "
                                  f"{configs[network].seed}, loss {losses[network].item()}); lower --lr or σ")
        optimizer.step()
        if base.clamp_weights:
            clamp_weights(stacked.model)
        total_loss += losses.detach().double().cpu() * rows
        correct += (logits.argmax(dim=1) == y).view(count, rows).sum(dim=1).cpu()
        seen += rows
    unstack_into(stacked.model, [network.model for network in networks])
    seconds = (time.perf_counter() - started) / count  # each network's share of the batched epoch
    return [EpochRecord(epoch + 1, float(total_loss[i]) / seen, int(correct[i]) / seen,
                        accuracy(networks[i].model, datasets[i].test_x, datasets[i].test_y), lr, seconds)
            for i in range(count)]
