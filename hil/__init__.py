"""hil: hardware-in-the-loop testbench for neural networks on noisy analog hardware.

The public API is re-exported here lazily, so ``import hil`` (and ``hil --help``) does not
import torch until a torch-backed name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hil._version import __version__
from hil.errors import (
    BackendUnavailableError,
    CheckpointError,
    ConfigError,
    DataError,
    HilError,
    ModelError,
    SiteError,
    StudyError,
    UnknownNameError,
)
from hil.noise import NoiseSpec, SiteNoise, SiteOverride

_LAZY = {
    "wrap": "hil.noisy_model",
    "NoisyModel": "hil.noisy_model",
    "Site": "hil.sites",
    "get_backend": "hil.backends",
    "register_backend": "hil.backends",
    "parse_backend_spec": "hil.backends",
    "create_model": "hil.models",
    "list_models": "hil.models",
    "register_model": "hil.models",
    "load_dataset": "hil.data",
    "Dataset": "hil.data",
    "train": "hil.training",
    "TrainConfig": "hil.config",
    "evaluate": "hil.evaluation",
    "save_checkpoint": "hil.checkpoint",
    "load_checkpoint": "hil.checkpoint",
    "read_run_metadata": "hil.checkpoint",
    "RunMetadata": "hil.run_metadata",
    "open_run": "hil.runs",
    "ResultStore": "hil.walking.store",
    "run_study": "hil.studies.harden",
    "get_executor": "hil.studies.engine",
    "walk_checkpoint": "hil.studies.walk",
    "walk_training": "hil.studies.training_walk",
    "fit_midpoint": "hil.walking.fit",
    "SweepSpec": "hil.walking.sweep",
    "evaluate_repetitions": "hil.guided.compare",
    "load_sensitivity": "hil.guided.sensitivity",
    "allocate_greedy": "hil.guided.allocation",
    "allocate_inverse_mu": "hil.guided.allocation",
    "run_experiment": "hil.reproduce",
    "ReproContext": "hil.reproduce",
    "EXPERIMENTS": "hil.reproduce",
    "fold_batchnorm": "hil.models.fold",
    "PREPROCESSING": "hil.data",
}

if TYPE_CHECKING:
    from hil.backends import get_backend, parse_backend_spec, register_backend
    from hil.checkpoint import load_checkpoint, read_run_metadata, save_checkpoint
    from hil.config import TrainConfig
    from hil.data import PREPROCESSING, Dataset, load_dataset
    from hil.evaluation import evaluate
    from hil.guided.allocation import allocate_greedy, allocate_inverse_mu
    from hil.guided.compare import evaluate_repetitions
    from hil.guided.sensitivity import load_sensitivity
    from hil.models import create_model, list_models, register_model
    from hil.models.fold import fold_batchnorm
    from hil.noisy_model import NoisyModel, wrap
    from hil.reproduce import EXPERIMENTS, ReproContext, run_experiment
    from hil.run_metadata import RunMetadata
    from hil.runs import open_run
    from hil.sites import Site
    from hil.studies.engine import get_executor
    from hil.studies.harden import run_study
    from hil.studies.training_walk import walk_training
    from hil.studies.walk import walk_checkpoint
    from hil.training import train
    from hil.walking.fit import fit_midpoint
    from hil.walking.store import ResultStore
    from hil.walking.sweep import SweepSpec


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hil' has no attribute {name!r}")


__all__ = [
    "BackendUnavailableError", "CheckpointError", "ConfigError", "DataError", "HilError",
    "ModelError", "NoiseSpec", "SiteError", "SiteNoise", "SiteOverride", "StudyError", "UnknownNameError",
    "__version__", *_LAZY,
]
