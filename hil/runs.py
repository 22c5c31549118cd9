"""One way to open a trained run: checkpoint → its data split → backend → wrapped model.

Every verb that evaluates a checkpoint (evaluate, walk, guided repetitions, binarisation, the
calibration accuracy check) goes through `open_run`, which closes the backend on exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hil.backends.base import Backend
    from hil.backends.spec import BackendSpec
    from hil.checkpoint import Checkpoint
    from hil.data import Dataset
    from hil.noise import NoiseSpec
    from hil.noisy_model import NoisyModel
    from hil.run_metadata import RunMetadata


@dataclass(frozen=True)
class OpenRun:
    """A checkpoint opened on a backend.

    Attributes:
        checkpoint: The loaded checkpoint (model and metadata).
        data: Its dataset, split with the seed it was trained with (the test split is unseen).
        backend: The backend the model runs on (closed when the `open_run` block ends).
        noisy: The model wrapped on ``backend``.
    """

    checkpoint: Checkpoint
    data: Dataset
    backend: Backend
    noisy: NoisyModel


def load_checkpoint_data(metadata: RunMetadata, data_dir: str | None = None) -> Dataset:
    """The dataset a checkpoint was trained on, split with its seed (so the test split is unseen) and prepared
    with its preprocessing.

    Args:
        metadata: The checkpoint's metadata (`hil.checkpoint.Checkpoint.run`).
        data_dir: Where the data files are; None uses the folder recorded at training time.

    Raises:
        HilError: Unknown dataset or missing files.
    """
    from hil.data import load_dataset

    info = metadata.dataset
    synthetic = info.name == "synthetic"
    return load_dataset(
        info.name,
        data_dir=data_dir if data_dir is not None else info.data_dir,
        seed=info.seed,
        input_shape=info.input_shape if synthetic else None,
        num_classes=info.num_classes if synthetic else None,
        preprocess=info.preprocess,
    )


@contextmanager
def open_run(checkpoint: str | os.PathLike[str], backend: str | BackendSpec | Backend = "sim",
             noise: NoiseSpec | None = None, *, data_dir: str | None = None,
             fold_bn: bool = False) -> Iterator[OpenRun]:
    """Load ``checkpoint``, rebuild its data split, build ``backend`` and wrap the model with ``noise``.

    A backend given as an object is used as it is and still closed on exit. ``fold_bn`` folds every
    BatchNorm into the Linear/Conv before it first (`hil.models.fold`), as an analog deployment runs it.

    Raises:
        HilError: Bad checkpoint, dataset or backend.
    """
    from hil.backends import get_backend
    from hil.backends.spec import BackendSpec
    from hil.checkpoint import load_checkpoint
    from hil.noisy_model import wrap

    runner = None if isinstance(backend, str | BackendSpec) else backend
    try:
        loaded = load_checkpoint(checkpoint)
        if fold_bn:
            from hil.models.fold import fold_batchnorm

            fold_batchnorm(loaded.model)
        data = load_checkpoint_data(loaded.run, data_dir)
        if runner is None:
            runner = get_backend(backend)
        yield OpenRun(loaded, data, runner, wrap(loaded.model, runner, noise))
    finally:
        if runner is not None:
            runner.close()
