"""MNIST and FashionMNIST from the original IDX files in a user-supplied folder.

hil never downloads data: the user points ``--data-dir`` at a folder holding the four
files (plain or gzip-compressed), either directly or in torchvision's ``<Name>/raw`` layout.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hil.data import DEFAULT_PREPROCESS
from hil.data._dataset import Dataset, check_fixed, prepared
from hil.errors import DataError

IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SHAPE: tuple[int, ...] = (1, 28, 28)
NUM_CLASSES = 10

# IDX type code → big-endian numpy dtype, as specified on Yann LeCun's MNIST page.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"
_FILES_HINT = ", ".join(IDX_FILES) + " (plain or .gz)"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    # Sniff the content rather than trust the suffix: a decompressed file that kept its
    # .gz name (or the reverse) is common after manual downloads.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST container format), plain or gzip-compressed.

    Layout: two zero bytes, a type code byte, a dimension-count byte, one big-endian
    uint32 per dimension, then the big-endian payload in C order.

    Args:
        path: File to read; gzip content is detected by its magic bytes.

    Returns:
        The array in native byte order, shaped by the header's dimensions.

    Raises:
        DataError: The file cannot be read, is not IDX (bad magic or type code), or its
            payload size does not match its dimensions. The message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic starts {data[:2].hex()}, expected 0000)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{path}: truncated header: {ndim} dimensions need {header_len} bytes, "
            f"file has {len(data)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header_len
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing data"
        raise DataError(
            f"{path}: payload {what}: dimensions {dims} of {dtype.name} need {expected} bytes, "
            f"found {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    # astype copies into native order, which also makes the array writable.
    return array.astype(dtype.newbyteorder("="))


def _locate(name: str, data_dir: str | os.PathLike[str] | None, subfolder: str) -> dict[str, Path]:
    """Find the four IDX files in ``data_dir`` or ``data_dir/<subfolder>/raw``."""
    if data_dir is None:
        raise DataError(
            f"dataset {name!r} needs --data-dir PATH pointing at a folder with {_FILES_HINT}"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"dataset {name!r}: data folder {root} does not exist; put the four idx files "
            f"{_FILES_HINT} there (hil does not download datasets)"
        )
    folders = [root, root / subfolder / "raw"]
    best: tuple[Path, list[str]] | None = None
    for folder in folders:
        if not folder.is_dir():
            continue
        found: dict[str, Path] = {}
        missing: list[str] = []
        for stem in IDX_FILES:
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found[stem] = candidate
                    break
            else:
                missing.append(stem)
        if not missing:
            return found
        # Report the folder closest to complete: that is where the user meant to put them.
        if best is None or len(missing) < len(best[1]):
            best = (folder, missing)
    assert best is not None  # root is a folder, so it was inspected
    folder, missing = best
    searched = " and ".join(str(f) for f in folders)
    raise DataError(
        f"dataset {name!r}: {folder} is missing {', '.join(missing)}; put the four idx "
        f"files {_FILES_HINT} there (searched {searched}; hil does not download datasets)"
    )


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(
            f"{images_path}: expected 3-D images (count, rows, cols), got shape {images.shape}"
        )
    if images.shape[1:] != IMAGE_SHAPE[1:]:
        raise DataError(
            f"{images_path}: expected {IMAGE_SHAPE[1]}×{IMAGE_SHAPE[2]} images, "
            f"got {images.shape[1]}×{images.shape[2]}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{labels_path}: expected 1-D integer labels, got {labels.dtype.name} "
            f"of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(
            f"{labels_path}: labels must lie in 0..{NUM_CLASSES - 1}, "
            f"found {labels.min()}..{labels.max()}"
        )
    return images.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _load(
    name: str,
    subfolder: str,
    data_dir: str | os.PathLike[str] | None,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
    preprocess: str,
) -> Dataset:
    # Config mistakes first: they are cheaper to report than reading 50 MB of files.
    check_fixed(name, IMAGE_SHAPE, NUM_CLASSES, input_shape, num_classes)
    files = _locate(name, data_dir, subfolder)
    train_x, train_y = _read_split(files[IDX_FILES[0]], files[IDX_FILES[1]])
    test_x, test_y = _read_split(files[IDX_FILES[2]], files[IDX_FILES[3]])
    return prepared(name, train_x, train_y, test_x, test_y, NUM_CLASSES, preprocess=preprocess, full_scale=255.0)


def _idx_loader(name: str, subfolder: str, title: str) -> Callable[..., Dataset]:
    """A loader for one IDX dataset (MNIST and FashionMNIST share the format and layout)."""

    def load(
        *,
        data_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        input_shape: tuple[int, ...] | None = None,
        num_classes: int | None = None,
        preprocess: str = DEFAULT_PREPROCESS,
    ) -> Dataset:
        del seed  # the official split is fixed
        return _load(name, subfolder, data_dir, input_shape, num_classes, preprocess)

    load.__name__ = load.__qualname__ = f"load_{name}"
    load.__doc__ = f"""Load {title} (official 60k/10k split) from the IDX files in ``data_dir``.

    Args:
        data_dir: Folder with the four IDX files, directly or under ``{subfolder}/raw``.
        seed: Unused: the official split is fixed.
        input_shape: Must be None or ``(1, 28, 28)``.
        num_classes: Must be None or 10.
        preprocess: ``paper``: pixels divided by 255, in [0, 1]; ``standard``: mean 0 / std 1.

    Raises:
        DataError: ``data_dir`` is None or lacks files, or a file is malformed.
        ConfigError: ``input_shape`` or ``num_classes`` differ from the dataset's.
    """
    return load


load_mnist = _idx_loader("mnist", "MNIST", "MNIST")
load_fashionmnist = _idx_loader("fashionmnist", "FashionMNIST", "FashionMNIST")
