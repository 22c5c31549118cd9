"""Datasets: a lazy registry of loaders plus `load_dataset`.

Importing this package must stay cheap: the CLI lists dataset names without importing
torch or numpy, so the loaders (and `Dataset`) are only imported on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hil.registry import Registry

if TYPE_CHECKING:
    from hil.data._dataset import Dataset

__all__ = ["DATASETS", "DEFAULT_PREPROCESS", "LEGACY_PREPROCESS", "PREPROCESSING", "Dataset",
           "check_preprocess", "dataset_names", "load_dataset"]

PREPROCESSING = ("paper", "standard")
"""How inputs are prepared: ``paper`` (images as [0, 1] pixels, speech as MFCCs, as Walking Noise feeds
them) or ``standard`` (every input standardised to mean 0 / std 1 with the train split's statistics)."""
DEFAULT_PREPROCESS = "paper"
LEGACY_PREPROCESS = "standard"
"""What a checkpoint or walk that does not record its preprocessing used (hil before it was a setting)."""

DATASETS: Registry[Any] = Registry(
    "dataset",
    {
        "mnist5k": "hil.data.embedded:load_mnist5k",
        "digits": "hil.data.embedded:load_digits",
        "synthetic": "hil.data.embedded:load_synthetic",
        "mnist": "hil.data.idx:load_mnist",
        "fashionmnist": "hil.data.idx:load_fashionmnist",
        "cifar10": "hil.data.cifar:load_cifar10",
        "svhn": "hil.data.cifar:load_svhn",
        "gsc": "hil.data.speech:load_gsc",
    },
)


def dataset_names() -> list[str]:
    """Return the names of all registered datasets, sorted."""
    return DATASETS.names()


def check_preprocess(value: object, what: str = "preprocess") -> str:
    """``value`` if it is one of `PREPROCESSING`.

    Raises:
        ConfigError: Anything else (the message lists the choices).
    """
    from hil.validation import check_choice

    return check_choice(value, what, PREPROCESSING)


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    preprocess: str = DEFAULT_PREPROCESS,
) -> Dataset:
    """Load a registered dataset by name.

    Args:
        name: Registered dataset name (see `dataset_names`).
        data_dir: Folder holding the dataset files; ignored by embedded datasets.
        seed: Seed for splits and synthetic data; same seed, same tensors.
        input_shape: Requested per-sample shape; fixed-shape datasets reject a different one.
        num_classes: Requested class count; fixed datasets reject a different one.
        preprocess: ``paper`` (default: images in [0, 1], speech as MFCCs) or ``standard`` (mean 0 / std 1).

    Returns:
        The loaded `Dataset`, prepared as ``preprocess`` says.

    Raises:
        UnknownNameError: No dataset is registered as ``name``.
        ConfigError: ``input_shape`` or ``num_classes`` do not fit the dataset, or an unknown ``preprocess``.
        DataError: Dataset files are missing or malformed.
    """
    check_preprocess(preprocess)
    loader = DATASETS.get(name)
    return loader(data_dir=data_dir, seed=seed, input_shape=input_shape, num_classes=num_classes,
                  preprocess=preprocess)


def __getattr__(name: str) -> Any:
    # `Dataset` lives in a module that imports torch; resolve it only when asked for.
    if name == "Dataset":
        from hil.data._dataset import Dataset

        return Dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
