"""Noisy training: Adam + cosine schedule, noise from a `NoiseSpec`, per-epoch checkpoints, resume.

Determinism: weight init, the shuffle of each epoch and the noise of each epoch are seeded from
(``seed``, purpose, epoch), so a run resumed from an epoch checkpoint continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import inspect
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from hil.backends.base import PlacesLayers
from hil.checkpoint import (
    METADATA,
    OPTIMIZER,
    WEIGHTS,
    is_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    save_checkpoint,
)
from hil.config import TrainConfig
from hil.errors import CheckpointError, ConfigError
from hil.evaluation import EvaluationResult, accuracy, evaluate
from hil.noise import NoiseSpec
from hil.run_metadata import DatasetInfo, ModelInfo, RunMetadata, TrainingState
from hil.seeding import derive_seed

if TYPE_CHECKING:
    from hil.noisy_model import NoisyModel

NOISY_EVAL_REPEATS = 3
"""Noise draws for the noisy accuracy reported at the end of training."""


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one finished epoch (1-based ``epoch``).

    ``seconds`` is the time its optimizer steps took, the epoch's test not counted (a batched epoch gives
    each of its K networks a K-th of its steps' time), so sequential and batched runs count alike.
    """

    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Outcome of `train`.

    Attributes:
        path: Checkpoint directory of the final model.
        clean_accuracy: Test accuracy without noise.
        noisy: Test accuracy under the training noise (None if training was clean).
        history: One record per epoch, including epochs done before a resume.
        noise: The noise trained with (from the profile when training with a calibration).
    """

    path: Path
    clean_accuracy: float
    noisy: EvaluationResult | None
    history: tuple[EpochRecord, ...]
    noise: NoiseSpec | None = None


class TrainProgress(Protocol):
    """Callbacks `train` reports to (the CLI draws a rich progress bar with them)."""

    def start(self, epochs: int, steps_per_epoch: int, first_epoch: int) -> None: ...

    def step(self, epoch: int, loss: float) -> None: ...

    def epoch_done(self, record: EpochRecord) -> None: ...


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of 0-based ``epoch`` under a cosine schedule from ``base_lr`` to 0."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


def _default_input_shape(model_name: str) -> tuple[int, ...] | None:
    from hil.models import MODELS

    parameter = inspect.signature(MODELS.get(model_name)).parameters.get("input_shape")
    default = None if parameter is None else parameter.default
    return tuple(default) if isinstance(default, tuple | list) else None


def load_training_data(config: TrainConfig) -> Any:
    """The dataset of ``config`` (synthetic data takes the model's default input shape)."""
    from hil.data import load_dataset

    shape = _default_input_shape(config.model) if config.dataset == "synthetic" else None
    return load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed, input_shape=shape,
                        preprocess=config.preprocess)


def _model_kwargs(model: nn.Module, fallback: dict[str, Any]) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return dict(config()) if callable(config) else fallback


def clamp_weights(model: nn.Module) -> None:
    """Clip every linear and convolution weight to [−1, 1] (``--clamp-weights``; stacked weights too)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
                module.weight.clamp_(-1.0, 1.0)


def run_directory(checkpoint: Path) -> Path:
    """The run a checkpoint belongs to: ``RUN`` for ``RUN/epochs/epoch-NNNN``, else itself."""
    if checkpoint.parent.name == "epochs" and checkpoint.name.startswith("epoch-"):
        return checkpoint.parent.parent
    return checkpoint


def _check_output_dir(out: Path, overwrite: bool, resume_from: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a directory path")
    if resume_from is not None and out.resolve() == run_directory(resume_from).resolve():
        return  # continuing the run in its own directory
    if overwrite or not out.exists():
        return
    if is_checkpoint(out):
        hint = f"--resume {out} to continue it, " if resume_from is None else ""
        raise ConfigError(
            f"{out} already holds a checkpoint; pass {hint}--overwrite to replace it, or choose another --out"
        )
    if any(out.iterdir()):
        raise ConfigError(f"{out} is not empty; choose another --out or pass --overwrite")


def _remove_old_run(out: Path) -> None:
    """Before overwriting: drop the old run's checkpoints so no stale epoch can be resumed."""
    for epoch_dir in sorted((out / "epochs").glob("epoch-*")):
        if is_checkpoint(epoch_dir):
            shutil.rmtree(epoch_dir)
    for name in (METADATA, WEIGHTS, OPTIMIZER):
        (out / name).unlink(missing_ok=True)


def train(config: TrainConfig, out: str | Path, *, resume_from: str | Path | None = None,
          overwrite: bool = False, progress: TrainProgress | None = None,
          keep_epochs: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` with ``config.noise`` at its sites.

    Args:
        config: The run. When resuming, its ``epochs`` may exceed the checkpoint's.
        out: Checkpoint directory (final model at ``out``, epoch ``k`` at
            ``out/epochs/epoch-000k`` if ``keep_epochs``).
        resume_from: A checkpoint (final or per-epoch) of this run to continue from.
        overwrite: Allow replacing a checkpoint already at ``out``.
        progress: Progress callbacks.
        keep_epochs: Write a checkpoint after every epoch.

    Raises:
        HilError: Bad config, missing data, unusable checkpoint or output directory.
    """
    from hil.backends import get_backend
    from hil.models import create_model
    from hil.noisy_model import wrap

    out = Path(out)
    resume_from = None if resume_from is None else Path(resume_from)
    _check_output_dir(out, overwrite, resume_from)
    data = load_training_data(config)
    history: list[EpochRecord] = []
    first_epoch = 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from)
        previous = checkpoint.run
        stored = TrainConfig.from_dict(previous.training.config)
        # The backend is the caller's (a checkpoint file never chooses a device or a record path).
        if replace(stored, epochs=config.epochs, backend=config.backend) != config:
            raise ConfigError(
                f"--resume {resume_from}: the run's settings differ from the checkpoint's; "
                f"only --epochs may change when resuming (and --backend, which the caller always chooses)"
            )
        first_epoch = previous.training.epochs_done
        if first_epoch >= config.epochs:
            raise ConfigError(
                f"{resume_from} already finished {first_epoch} epochs; pass --epochs "
                f"greater than {first_epoch} to train further"
            )
        history = [_epoch_record(r, resume_from) for r in previous.training.history]
        model = checkpoint.model
    elif config.init is not None:
        model = initial_model(config, data)
    else:
        torch.manual_seed(derive_seed(config.seed, "init"))
        model = create_model(config.model, bn=config.bn, input_shape=data.input_shape,
                             num_classes=data.num_classes)
        if config.quant is not None:
            from hil.models.quantize import QuantConfig, quantize

            model = quantize(model, QuantConfig(config.quant, config.act_scaling))
    noise, calibration = config.noise, None
    if config.calibration is not None:
        if resume_from is not None:
            noise = NoiseSpec.from_dict(previous.noise)
            calibration = None if previous.calibration is None else dict(previous.calibration)
        else:
            noise, calibration = calibrated_noise(config.calibration, model, data.train_x)
    backend = get_backend(config.backend)
    try:
        noisy = wrap(model, backend, noise)
        optimizer = torch.optim.Adam(noisy.model.parameters(), lr=config.lr)
        if resume_from is not None:
            load_optimizer_state(resume_from, optimizer, checkpoint.metadata)
        metadata = run_metadata(config, noisy, noise, calibration, data)
        steps = steps_per_epoch(len(data.train_x), config.batch_size)
        if overwrite and resume_from is None and out.is_dir():
            _remove_old_run(out)
        if progress is not None:
            progress.start(config.epochs, steps, first_epoch)
        for epoch in range(first_epoch, config.epochs):
            record = _train_epoch(noisy, optimizer, data, config, epoch, progress)
            history.append(record)
            if progress is not None:
                progress.epoch_done(record)
            if keep_epochs:
                save_epoch(out, noisy.model, metadata, config, history, optimizer)
        return finish_run(out, noisy, optimizer, metadata, config, history, data)
    finally:
        backend.close()


def run_metadata(config: TrainConfig, noisy: NoisyModel, noise: NoiseSpec, calibration: dict[str, Any] | None,
                 data: Any) -> RunMetadata:
    """What a checkpoint of this run records (its training state and metrics are added when saved)."""
    return RunMetadata(
        model=ModelInfo(config.model, _model_kwargs(noisy.model, {"bn": config.bn}),
                        None if config.quant is None else {"bits": config.quant, "act_scaling": config.act_scaling}),
        sites=tuple(site.to_dict() for site in noisy.sites),
        noise=noise.to_dict(),
        calibration=calibration,
        backend=config.backend,
        dataset=DatasetInfo(config.dataset, config.data_dir, config.seed, tuple(data.input_shape),
                            data.num_classes, data.preprocess),
        seed=config.seed,
    )


def save_epoch(out: Path, model: nn.Module, metadata: RunMetadata, config: TrainConfig,
               history: list[EpochRecord], optimizer: torch.optim.Optimizer) -> None:
    """The checkpoint of the epoch just finished (the last of ``history``), under ``out/epochs``."""
    record = history[-1]
    save_checkpoint(out / "epochs" / f"epoch-{record.epoch:04d}", model,
                    replace(metadata, training=_training_state(config, history),
                            metrics={"test_accuracy": record.test_accuracy}), optimizer)


def finish_run(out: Path, noisy: NoisyModel, optimizer: torch.optim.Optimizer, metadata: RunMetadata,
               config: TrainConfig, history: list[EpochRecord], data: Any) -> TrainResult:
    """Test the trained network (clean, and under its noise), write the final checkpoint to ``out``."""
    clean = accuracy(noisy.model, data.test_x, data.test_y)
    noisy_result = None
    if not noisy.noise.is_clean or isinstance(noisy.backend, PlacesLayers):  # the hardware (device, twin) is noisy
        noisy_result = evaluate(noisy, data.test_x, data.test_y, repeats=NOISY_EVAL_REPEATS,
                                seed=derive_seed(config.seed, "eval"))
    metrics: dict[str, float] = {"test_accuracy": clean}
    if noisy_result is not None:
        metrics["noisy_test_accuracy"] = noisy_result.mean
        metrics["noisy_test_accuracy_std"] = noisy_result.std
    save_checkpoint(out, noisy.model, replace(metadata, training=_training_state(config, history), metrics=metrics),
                    optimizer)
    return TrainResult(out, clean, noisy_result, tuple(history), noisy.noise)


FINE_TUNE_SETTINGS = ("model", "bn", "dataset", "data_dir", "preprocess", "quant", "act_scaling")
"""What a fine-tuning run (``--init``) takes from its starting checkpoint unless given."""


def fine_tune_defaults(checkpoint: str | Path) -> dict[str, Any]:
    """The `FINE_TUNE_SETTINGS` of the run that wrote ``checkpoint`` (never its backend: a file chooses no device).

    Raises:
        CheckpointError: The checkpoint's metadata cannot be read.
    """
    from hil.checkpoint import read_run_metadata

    stored = read_run_metadata(Path(checkpoint)).training.config
    return {key: stored[key] for key in FINE_TUNE_SETTINGS if key in stored}


def initial_model(config: TrainConfig, data: Any) -> nn.Module:
    """The network of ``config.init``, checked to be ``config``'s model for ``data``.

    Raises:
        CheckpointError: Unreadable checkpoint.
        ConfigError: It holds another model, quantisation or input/output shape.
    """
    assert config.init is not None
    loaded = load_checkpoint(config.init)
    info, dataset = loaded.run.model, loaded.run.dataset
    bits = None if info.quant is None else info.quant.get("bits")
    found = {"model": info.name, "bn": bool(info.kwargs.get("bn", False)), "quant": bits}
    wanted = {"model": config.model, "bn": config.bn, "quant": config.quant}
    differ = [f"{key} {found[key]!r} (asked {wanted[key]!r})" for key in found if found[key] != wanted[key]]
    if dataset.input_shape is not None and tuple(dataset.input_shape) != tuple(data.input_shape):
        differ.append(f"inputs {tuple(dataset.input_shape)} (data has {tuple(data.input_shape)})")
    if dataset.num_classes is not None and dataset.num_classes != data.num_classes:
        differ.append(f"{dataset.num_classes} classes (data has {data.num_classes})")
    if differ:
        raise ConfigError(f"--init {config.init} holds {', '.join(differ)}; fine-tune it with its own settings "
                          f"(drop --model/--bn/--quant/--dataset to take them from the checkpoint)")
    return loaded.model


def calibrated_noise(path: str, model: Any, inputs: torch.Tensor) -> tuple[NoiseSpec, dict[str, Any]]:
    """The NoiseSpec a calibration profile means for ``model``, and what to record in the checkpoint."""
    from hil.calibration.profile import read_profile

    profile = read_profile(path)
    spec, per_site = profile.noise_spec(model, inputs)
    record = {"profile": str(path), "profile_version": profile.version, "device": profile.device.get("identity"),
              "created": profile.created, "sigma_add": profile.sigma_add, "sigma_mul": profile.sigma_mul,
              "order": profile.order, "tile_rows": profile.tile_rows, "sigma_add_per_site": per_site}
    return spec, record


def _training_state(config: TrainConfig, history: list[EpochRecord]) -> TrainingState:
    return TrainingState(config.to_dict(), len(history), tuple(asdict(r) for r in history))


def _epoch_record(record: Mapping[str, Any], checkpoint: Path) -> EpochRecord:
    try:
        return EpochRecord(**record)
    except TypeError:
        raise CheckpointError(f"{checkpoint}: training.history holds a record hil cannot read: {record!r}") from None


def start_epoch(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> float:
    """Set and return 0-based ``epoch``'s learning rate (cosine schedule)."""
    lr = cosine_lr(config.lr, epoch, config.epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def epoch_order(config: TrainConfig, epoch: int, samples: int) -> torch.Tensor:
    """The shuffle of ``epoch``: seeded from (``config.seed``, epoch), so a resumed run continues exactly."""
    return torch.randperm(samples, generator=torch.Generator().manual_seed(derive_seed(config.seed, "shuffle", epoch)))


def steps_per_epoch(samples: int, batch_size: int) -> int:
    """Optimizer steps of one epoch over ``samples`` (a last batch of one sample is dropped: it breaks BatchNorm)."""
    full, rest = divmod(samples, batch_size)
    return full + (1 if rest > 1 else 0)


def _train_epoch(noisy: NoisyModel, optimizer: torch.optim.Optimizer, data: Any,
                 config: TrainConfig, epoch: int, progress: TrainProgress | None) -> EpochRecord:
    started = time.perf_counter()
    lr = start_epoch(optimizer, config, epoch)
    order = epoch_order(config, epoch, len(data.train_x))
    noisy.backend.reseed(derive_seed(config.seed, "noise", epoch))
    device = noisy.backend.device
    noisy.train()
    total_loss = 0.0
    correct = seen = 0
    for step in range(steps_per_epoch(len(order), config.batch_size)):
        index = order[step * config.batch_size:(step + 1) * config.batch_size]
        x = data.train_x[index].to(device)
        y = data.train_y[index].to(device)
        logits = noisy(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(loss):
            raise CheckpointError(
                f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower --lr or σ"
            )
        optimizer.step()
        if config.clamp_weights:
            clamp_weights(noisy.model)
        batch_loss = loss.item()
        total_loss += batch_loss * len(index)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(index)
        if progress is not None:
            progress.step(epoch, batch_loss)
    seconds = time.perf_counter() - started  # the training alone, as a batched epoch counts it
    return EpochRecord(epoch + 1, total_loss / seen, correct / seen, accuracy(noisy.model, data.test_x, data.test_y),
                       lr, seconds)


def train_once(config: TrainConfig, out: str | Path) -> Path:
    """``config`` trained into ``out``, or ``out`` as it is when it already holds this very training.

    Studies that train many networks into one folder call this, so a rerun resumes them.

    Raises:
        ConfigError: ``out`` holds a checkpoint trained with other settings (never overwritten).
        HilError: Training failed.
    """
    from hil.checkpoint import METADATA, read_run_metadata

    out = Path(out)
    if (out / METADATA).is_file():
        if TrainConfig.from_dict(read_run_metadata(out).training.config) != config:
            raise ConfigError(f"{out} was trained with other settings (epochs, dataset, preprocessing, noise…) "
                              f"than this study's; give another --out or the settings it was run with")
        return out
    train(config, out, overwrite=out.exists(), keep_epochs=False)
    return out


def resume_backend(stored: object, given: str | None, checkpoint: Path) -> str:
    """The backend a resumed run trains on: ``given`` (``--backend``), or the file's when plain ``sim``/``gpu``.

    A checkpoint may come from anyone: it never chooses a device to talk to or a file to record into.

    Raises:
        ConfigError: The checkpoint names another backend and no ``--backend`` was given.
    """
    from hil.backends.spec import parse_backend_spec
    from hil.errors import HilError

    if given is not None:
        return given
    text = stored if isinstance(stored, str) else "sim"
    try:
        name = parse_backend_spec(text).name
    except HilError:
        name = ""
    if name in ("sim", "gpu"):
        return text
    raise ConfigError(f"{checkpoint} was trained on backend {text!r}; hil does not take a device or a record path "
                      f"from a checkpoint file: give --backend (e.g. --backend sim, or the device spec) to resume")


def resumed_config(checkpoint: str | Path, *, epochs: int | None = None, backend: str | None = None) -> TrainConfig:
    """The settings a run resumed from ``checkpoint`` continues with: the file's, ``epochs`` and a safe backend.

    Raises:
        CheckpointError: The checkpoint's metadata cannot be read.
        ConfigError: The stored settings are invalid, or name a backend hil will not take from a file.
    """
    from hil.checkpoint import read_run_metadata

    checkpoint = Path(checkpoint)
    stored = read_run_metadata(checkpoint).training.config
    return TrainConfig.from_dict({**stored, **({"epochs": epochs} if epochs is not None else {}),
                                  "backend": resume_backend(stored.get("backend", "sim"), backend, checkpoint)})
