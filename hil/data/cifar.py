"""CIFAR-10 (python pickle batches) and SVHN (.mat) from local files; never downloaded.

CIFAR-10's ``cifar-10-batches-py`` files are pickles of dicts holding numpy arrays. They are read
with a restricted unpickler that only admits the handful of numpy functions needed to rebuild an
array (and plain containers): a pickle that asks for anything else — the way a malicious file
would run code — is refused.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hil.data import DEFAULT_PREPROCESS
from hil.data._dataset import Dataset, check_fixed, prepared
from hil.errors import DataError

CIFAR_SHAPE = (3, 32, 32)
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("builtins", "bytes"), ("_codecs", "encode"),
}


MAX_BATCH_BYTES = 256 << 20
"""Largest CIFAR batch file read (the real ones are 31 MB)."""


def _bytes_from_data(*args: Any) -> bytes:
    """``bytes`` as numpy's pickles use it (from str/bytes), never ``bytes(N)``: a file must not size our memory."""
    if any(not isinstance(a, str | bytes | bytearray) for a in args):
        raise pickle.UnpicklingError("refusing bytes() of anything but text or bytes (a pickle asked for memory)")
    return bytes(*args)


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "bytes"):
            return _bytes_from_data
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays and plain data allowed")


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64) from one CIFAR-10 python batch.

    Raises:
        DataError: Unreadable, not a CIFAR batch, or a pickle that wants more than arrays.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_BATCH_BYTES:
            raise DataError(f"{file}: {size:,} bytes is not a CIFAR-10 python batch (those are ~31 MB); "
                            f"point --data-dir at cifar-10-batches-py")
        raw = file.read_bytes()
    except OSError as error:
        raise DataError(f"{file}: cannot read ({error.strerror or error})") from None
    try:
        batch = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, MemoryError, OverflowError,
            IndexError, KeyError, RecursionError) as error:
        raise DataError(f"{file}: not a CIFAR-10 python batch ({str(error)[:200]})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{file}: not a CIFAR-10 python batch (a {type(batch).__name__}, not a dict)")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{file}: CIFAR-10 batch without 'data' and 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DataError(f"{file}: expected data of shape (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{file}: labels must lie in 0..9")
    return data.reshape(-1, *CIFAR_SHAPE), labels


def _folder(name: str, data_dir: str | os.PathLike[str] | None, hint: str) -> Path:
    if data_dir is None:
        raise DataError(f"dataset {name!r} needs --data-dir PATH pointing at {hint} (hil does not download datasets)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset {name!r}: data folder {root} does not exist; it should hold {hint}")
    return root


def load_cifar10(*, data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
                 input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                 preprocess: str = DEFAULT_PREPROCESS) -> Dataset:
    """CIFAR-10 (50k/10k) from ``cifar-10-batches-py`` (the folder itself or its parent).

    ``preprocess``: ``paper`` divides the 8-bit pixels by 255; ``standard`` standardises them.

    Raises:
        DataError: Missing or malformed files.
        ConfigError: ``input_shape``/``num_classes`` differ from (3, 32, 32)/10.
    """
    del seed
    check_fixed("cifar10", CIFAR_SHAPE, 10, input_shape, num_classes)
    hint = "the cifar-10-batches-py folder (data_batch_1..5, test_batch)"
    root = _folder("cifar10", data_dir, hint)
    folder = root if (root / CIFAR_TEST).is_file() else root / "cifar-10-batches-py"
    missing = [n for n in (*CIFAR_TRAIN, CIFAR_TEST) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"dataset 'cifar10': {folder} is missing {', '.join(missing)}; point --data-dir at {hint}")
    train = [read_cifar_batch(folder / n) for n in CIFAR_TRAIN]
    test_x, test_y = read_cifar_batch(folder / CIFAR_TEST)
    return prepared("cifar10", np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                    test_x, test_y, 10, preprocess=preprocess, full_scale=255.0)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path)
    except (OSError, ValueError, NotImplementedError, MatReadError) as error:
        raise DataError(f"{path}: not a readable SVHN .mat file ({error})") from None
    if "X" not in content or "y" not in content:
        raise DataError(f"{path}: SVHN .mat without X and y")
    images, labels = np.asarray(content["X"]), np.asarray(content["y"]).reshape(-1).astype(np.int64)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise DataError(f"{path}: expected X of shape (32, 32, 3, N) matching y, got {images.shape}")
    labels = np.where(labels == 10, 0, labels)  # SVHN stores digit 0 as label 10
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 1..10")
    return images.transpose(3, 2, 0, 1), labels


def load_svhn(*, data_dir: str | os.PathLike[str] | None = None, seed: int = 0,
              input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
              preprocess: str = DEFAULT_PREPROCESS) -> Dataset:
    """SVHN cropped digits from ``train_32x32.mat`` and ``test_32x32.mat`` (label 10 → digit 0).

    ``preprocess``: ``paper`` divides the 8-bit pixels by 255; ``standard`` standardises them.

    Raises:
        DataError: Missing or malformed files.
        ConfigError: ``input_shape``/``num_classes`` differ from (3, 32, 32)/10.
    """
    del seed
    check_fixed("svhn", CIFAR_SHAPE, 10, input_shape, num_classes)
    root = _folder("svhn", data_dir, "train_32x32.mat and test_32x32.mat")
    missing = [n for n in ("train_32x32.mat", "test_32x32.mat") if not (root / n).is_file()]
    if missing:
        raise DataError(f"dataset 'svhn': {root} is missing {', '.join(missing)}")
    train_x, train_y = _read_svhn(root / "train_32x32.mat")
    test_x, test_y = _read_svhn(root / "test_32x32.mat")
    return prepared("svhn", train_x, train_y, test_x, test_y, 10, preprocess=preprocess, full_scale=255.0)
