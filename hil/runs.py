"""One way to open a trained run: checkpoint → its data split → backend → wrapped model.

Every verb that evaluates a checkpoint (evaluate, walk, guided repetitions, binarisation, the
calibration accuracy check) goes through `open_run`, which closes the backend on exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil.backends.base import Backend
    from hil.backends.spec import BackendSpec
    from hil.checkpoint import Checkpoint
    from hil.data import Dataset
    from hil.noise import NoiseSpec
    from hil.noisy_model import NoisyModel


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


def load_checkpoint_data(metadata: dict[str, Any], data_dir: str | None = None) -> Dataset:
    """The dataset a checkpoint was trained on, split with its seed (so the test split is unseen).

    Raises:
        HilError: Unknown dataset or missing files.
    """
    from hil.data import load_dataset

    data_spec = metadata.get("dataset") or {}
    name = data_spec.get("name", "mnist5k")
    shape = data_spec.get("input_shape")
    return load_dataset(
        name,
        data_dir=data_dir if data_dir is not None else data_spec.get("data_dir"),
        seed=int(data_spec.get("seed", 0)),
        input_shape=tuple(shape) if name == "synthetic" and shape else None,
        num_classes=data_spec.get("num_classes") if name == "synthetic" else None,
    )


@contextmanager
def open_run(checkpoint: str | os.PathLike[str], backend: str | BackendSpec | Backend = "sim",
             noise: NoiseSpec | None = None, *, data_dir: str | None = None) -> Iterator[OpenRun]:
    """Load ``checkpoint``, rebuild its data split, build ``backend`` and wrap the model with ``noise``.

    A backend given as an object is used as it is and still closed on exit.

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
        data = load_checkpoint_data(loaded.metadata, data_dir)
        if runner is None:
            runner = get_backend(backend)  # type: ignore[arg-type]  # a spec, by the test above
        yield OpenRun(loaded, data, runner, wrap(loaded.model, runner, noise))
    finally:
        if runner is not None:
            runner.close()
