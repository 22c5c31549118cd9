"""The `Dataset` container and the helpers every loader shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hil.data import LEGACY_PREPROCESS, check_preprocess
from hil.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """A train/test pair of preprocessed tensors (see `prepared`).

    Attributes:
        name: Registry name of the dataset.
        train_x: Float32 inputs, shape ``(N, *input_shape)``.
        train_y: Int64 labels, shape ``(N,)``.
        test_x: Float32 inputs, shape ``(M, *input_shape)``.
        test_y: Int64 labels, shape ``(M,)``.
        num_classes: Number of classes; labels lie in ``[0, num_classes)``.
        preprocess: How the inputs were prepared: ``paper`` or ``standard`` (`hil.data.PREPROCESSING`).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    preprocess: str = LEGACY_PREPROCESS

    def __post_init__(self) -> None:
        # Catch loader bugs here rather than as a shape error deep inside training.
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: {split} split has {x.shape[0]} inputs but {y.shape[0]} labels"
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(
                f"{self.name}: train inputs {tuple(self.train_x.shape[1:])} and test inputs "
                f"{tuple(self.test_x.shape[1:])} differ in shape"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, without the batch dimension."""
        return tuple(self.train_x.shape[1:])


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so that every class is divided in the same proportion.

    Each class is shuffled with one seeded generator and its first
    ``round(count * test_fraction)`` indices go to the test split; both index arrays are
    then shuffled with the same generator, so class-sorted inputs come out mixed.

    Args:
        labels: 1-D array of class labels.
        test_fraction: Share of each class put in the test split, in ``(0, 1)``.
        seed: Generator seed; the same seed gives the same split.

    Returns:
        ``(train_idx, test_idx)`` as int64 index arrays.

    Raises:
        ConfigError: ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_parts: list[np.ndarray] = []
    test_parts: list[np.ndarray] = []
    # np.unique sorts, so the generator is consumed in the same order for any input order.
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts).astype(np.int64))
    test_idx = rng.permutation(np.concatenate(test_parts).astype(np.int64))
    return train_idx, test_idx


def _to_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Always copy: the Dataset must not alias (or warn about) a caller's read-only arrays.
    if isinstance(a, torch.Tensor):
        return a.detach().to(dtype=dtype, copy=True)
    return torch.tensor(np.asarray(a), dtype=dtype)


def normalised(
    name: str,
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    num_classes: int,
) -> Dataset:
    """Build a `Dataset`, standardising both splits with the train split's statistics.

    The mean and standard deviation are single scalars over all train values, so the
    relative scale of features (pixels) is kept and no test information leaks into them.

    Args:
        name: Dataset name.
        train_x: Train inputs, shape ``(N, *input_shape)``, any numeric dtype.
        train_y: Train labels, shape ``(N,)``.
        test_x: Test inputs, shape ``(M, *input_shape)``.
        test_y: Test labels, shape ``(M,)``.
        num_classes: Number of classes.

    Returns:
        The `Dataset` with float32 inputs and int64 labels (``preprocess`` ``standard``).
    """
    return prepared(name, train_x, train_y, test_x, test_y, num_classes, preprocess=LEGACY_PREPROCESS, full_scale=None)


def check_fixed(
    name: str,
    shape: tuple[int, ...],
    classes: int,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
) -> None:
    """Reject a requested shape or class count that a fixed dataset cannot provide.

    Args:
        name: Dataset name, for the message.
        shape: The dataset's real per-sample shape.
        classes: The dataset's real class count.
        input_shape: What the caller asked for, or None for "whatever it is".
        num_classes: What the caller asked for, or None.

    Raises:
        ConfigError: A requested value differs from the dataset's.
    """
    if input_shape is not None and tuple(input_shape) != tuple(shape):
        raise ConfigError(
            f"dataset {name!r} has input shape {tuple(shape)}, not {tuple(input_shape)}; "
            "leave input_shape unset or use the 'synthetic' dataset for other shapes"
        )
    if num_classes is not None and num_classes != classes:
        raise ConfigError(
            f"dataset {name!r} has {classes} classes, not {num_classes}; "
            "leave num_classes unset or use the 'synthetic' dataset for other class counts"
        )


def prepared(
    name: str,
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    num_classes: int,
    *,
    preprocess: str,
    full_scale: float | None,
) -> Dataset:
    """Build a `Dataset` with the inputs prepared as ``preprocess`` says.

    ``paper`` (Walking Noise, section 4): images are fed as they are, pixel values divided by the
    format's ``full_scale`` (255 for 8-bit images, 16 for scikit-learn's digits) so they lie in
    [0, 1]; features that are already features (MFCCs: ``full_scale`` None) are left unchanged.
    ``standard``: both splits standardised to mean 0 / std 1 with the train split's scalar statistics
    (`normalised`), what hil did before preprocessing became a setting.

    Raises:
        ConfigError: ``preprocess`` is not one of `hil.data.PREPROCESSING`.
    """
    check_preprocess(preprocess)
    tx = _to_tensor(train_x, torch.float32)
    vx = _to_tensor(test_x, torch.float32)
    shift, scale = 0.0, (1.0 if full_scale is None else float(full_scale))
    if preprocess == "standard":
        shift, scale = _train_statistics(tx)
    return Dataset(
        name=name,
        train_x=tx.sub_(shift).div_(scale),  # in place: tx and vx are our own copies
        train_y=_to_tensor(train_y, torch.int64),
        test_x=vx.sub_(shift).div_(scale),
        test_y=_to_tensor(test_y, torch.int64),
        num_classes=int(num_classes),
        preprocess=preprocess,
    )


def _train_statistics(train_x: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of all train values as scalars; std 1 for a constant split (centring alone then)."""
    # Statistics in float64: a float32 sum over ~50M pixels loses digits.
    as64 = train_x.double()
    mean = float(as64.mean())
    std = float(as64.std()) if train_x.numel() > 1 else 0.0
    return mean, std if std > 0.0 else 1.0
