"""Checkpoints: a directory with safetensors weights and a versioned ``metadata.json``.

Layout::

    run/
      model.safetensors       weights of the inner model (no pickle anywhere)
      optimizer.safetensors   optimizer tensors, for resuming (optional)
      metadata.json           format version, model name + kwargs, sites, noise, dataset,
                              seed, metrics.test_accuracy, hil version, training state

Each file is written to a temporary name and renamed, metadata last, so a checkpoint whose
``metadata.json`` exists is complete.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from hil._version import __version__
from hil.errors import CheckpointError, HilError
from hil.run_metadata import FORMAT, FORMAT_VERSION, RunMetadata, check_envelope
from hil.validation import check_size

METADATA = "metadata.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: The checkpoint directory.
        model: The rebuilt inner model with its weights (CPU, eval mode).
        metadata: The parsed ``metadata.json`` (its envelope checked; `run` checks and types the rest).
    """

    path: Path
    model: nn.Module
    metadata: dict[str, Any]

    @functools.cached_property
    def run(self) -> RunMetadata:
        """The metadata, typed and checked once (`hil.run_metadata.RunMetadata`)."""
        return RunMetadata.from_dict(self.metadata, str(self.path / METADATA))


def _atomic_write(path: Path, write: Any) -> None:
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a checkpoint (its metadata file exists)."""
    return (Path(path) / METADATA).is_file()


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, metadata: RunMetadata | dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``model``'s weights, optional optimizer state and ``metadata`` to directory ``path``.

    ``metadata`` is a `RunMetadata` or a plain mapping that holds ``model`` (``{"name", "kwargs"}``); format
    and version fields are added here.

    Raises:
        CheckpointError: The directory cannot be written.
    """
    directory = Path(path)
    if isinstance(metadata, RunMetadata):
        metadata = metadata.to_dict()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        _atomic_write(directory / WEIGHTS, lambda p: save_file(state, p))
        envelope = {"format": FORMAT, "format_version": FORMAT_VERSION, "hil_version": __version__}
        full = {**envelope, **{key: value for key, value in metadata.items() if key not in envelope}}
        if optimizer is not None:
            tensors, scalars = _split_optimizer_state(optimizer)
            _atomic_write(directory / OPTIMIZER, lambda p: save_file(tensors, p))
            full["optimizer"] = scalars
        text = json.dumps(full, indent=2, sort_keys=False)
        _atomic_write(directory / METADATA, lambda p: Path(p).write_text(text + "\n"))
    except OSError as error:
        raise CheckpointError(f"cannot write checkpoint to {directory}: {error.strerror or error}") from None
    return directory


def _split_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars["state"].setdefault(str(index), {})[key] = value
    return tensors, scalars


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and version-check ``path/metadata.json``.

    Raises:
        CheckpointError: Missing, unreadable, not a hil checkpoint, or a newer format.
    """
    directory = Path(path)
    meta_path = directory / METADATA
    if not directory.exists():
        raise CheckpointError(f"no checkpoint at {directory}: the directory does not exist; "
                              f"train one with: hil train --out {directory}")
    if not meta_path.is_file():
        raise CheckpointError(f"no checkpoint at {directory}: {METADATA} is missing; "
                              f"point --checkpoint at a directory written by hil train")
    check_size(meta_path, "checkpoint metadata", error=CheckpointError)
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {meta_path}: {error}; the checkpoint is damaged: copy it again or "
                              f"retrain it") from None
    check_envelope(metadata, str(meta_path))
    return metadata


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"cannot read weights {path}: {error}; the checkpoint is incomplete or damaged: copy "
                              f"it again or retrain it") from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load ``path`` (safetensors) into ``model``, explaining any key or shape mismatch.

    Raises:
        CheckpointError: Missing/unexpected keys or a shape mismatch.
    """
    tensors = _read_tensors(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    for key in sorted(k for k in tensors if k in expected):  # deterministic: the first layer's keys first
        if tuple(tensors[key].shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"weights in {path} do not fit the model: {key} has shape {tuple(tensors[key].shape)} "
                f"in the checkpoint but {tuple(expected[key].shape)} in the model"
            )
    try:
        # Quantised layers may store a learned scale where a fresh layer holds its statistics
        # buffer; their own loading maps one onto the other, so let the model decide.
        model.load_state_dict(tensors, strict=True)
    except RuntimeError:
        raise CheckpointError(
            f"weights in {path} do not fit the model: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; was it saved from a different model or --bn setting?"
        ) from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Rebuild the model of checkpoint ``path`` with its weights. Never unpickles.

    Raises:
        CheckpointError: See `read_metadata` and `load_weights`.
        UnknownNameError: The checkpoint's model is not registered here.
    """
    from hil.models import create_model

    directory = Path(path)
    metadata = read_metadata(directory)
    spec = metadata["model"]
    raw_kwargs = spec.get("kwargs") or {}
    if not isinstance(raw_kwargs, dict):
        raise CheckpointError(f"{directory / METADATA}: metadata.model.kwargs must be an object")
    kwargs = dict(raw_kwargs)
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    try:
        model = create_model(spec["name"], **kwargs)
    except HilError:
        raise
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{directory}: cannot rebuild model {spec['name']!r} from metadata.model.kwargs: {error}"
        ) from None
    if spec.get("quant") is not None:
        from hil.models.quantize import QuantConfig, quantize

        if not isinstance(spec["quant"], dict):
            raise CheckpointError(f"{directory / METADATA}: metadata.model.quant must be an object")
        model = quantize(model, QuantConfig.from_dict(spec["quant"]))
    load_weights(model, directory / WEIGHTS)
    model.eval()
    return Checkpoint(directory, model, metadata)


def load_optimizer_state(path: str | os.PathLike[str], optimizer: torch.optim.Optimizer,
                         metadata: dict[str, Any]) -> None:
    """Restore the optimizer saved beside a checkpoint's weights.

    Raises:
        CheckpointError: The checkpoint has no optimizer state or it does not fit.
    """
    directory = Path(path)
    scalars = metadata.get("optimizer")
    if not isinstance(scalars, dict) or not (directory / OPTIMIZER).is_file():
        raise CheckpointError(f"checkpoint {directory} has no optimizer state to resume from")
    tensors = _read_tensors(directory / OPTIMIZER)
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = tensor
    for index, values in scalars.get("state", {}).items():
        state.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"optimizer state in {directory} does not fit: {error}") from None


def read_run_metadata(path: str | os.PathLike[str]) -> RunMetadata:
    """`read_metadata`, typed and fully checked.

    Raises:
        CheckpointError: See `read_metadata`, or a field of the wrong kind (named in the message).
    """
    return RunMetadata.from_dict(read_metadata(path), str(Path(path) / METADATA))
