"""IDX reader and the MNIST / FashionMNIST folder loaders, on small real-format files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hil.data import load_dataset
from hil.data.idx import IDX_FILES, read_idx
from hil.errors import ConfigError, DataError

N_TRAIN = 20
N_TEST = 10
TYPE_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array: np.ndarray, type_code: int | None = None) -> bytes:
    """Encode ``array`` as IDX: magic 0x0000, type code, ndim, big-endian dims, payload."""
    code = TYPE_CODES[array.dtype.type] if type_code is None else type_code
    header = struct.pack(">HBB", 0, code, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    data = idx_bytes(array)
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_dataset(folder: Path, *, compress: bool = False) -> dict[str, np.ndarray]:
    train_x, train_y = make_split(N_TRAIN, 0)
    test_x, test_y = make_split(N_TEST, 1)
    arrays = dict(zip(IDX_FILES, (train_x, train_y, test_x, test_y), strict=True))
    for stem, array in arrays.items():
        write_idx(folder / stem, array, compress=compress)
    return arrays


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- read_idx -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(TYPE_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: type, compress: bool) -> None:
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / "x-idx3", array, compress=compress)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_read_idx_images_and_labels_round_trip(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path)
    for stem, array in arrays.items():
        got = read_idx(tmp_path / stem)
        assert got.shape == array.shape
        np.testing.assert_array_equal(got, array)
    # The header really is the documented big-endian layout.
    raw = (tmp_path / IDX_FILES[0]).read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">III", raw[4:16]) == (N_TRAIN, 28, 28)


def test_read_idx_rejects_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"\x01\x02" + idx_bytes(np.arange(5, dtype=np.uint8))[2:])
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert snapshot(tmp_path) == before


def test_read_idx_rejects_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "code-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8), type_code=0x0A))
    with pytest.raises(DataError, match="type code 0x0A"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_truncated_payload(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))[:-100]
    path = tmp_path / ("short-idx3-ubyte" + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(data) if compress else data)
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=r"truncated.*3136 bytes.*3036") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert snapshot(tmp_path) == before


def test_read_idx_rejects_trailing_data_and_short_header(tmp_path: Path) -> None:
    long = tmp_path / "long"
    long.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="trailing data"):
        read_idx(long)
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="truncated header"):
        read_idx(short)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(tiny)


def test_read_idx_rejects_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(500, dtype=np.uint8)))[:20])
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file_is_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent")


# --- load_mnist / load_fashionmnist -----------------------------------------------------


def check_loaded(ds, arrays: dict[str, np.ndarray], name: str) -> None:
    assert ds.name == name
    assert ds.train_x.shape == (N_TRAIN, 1, 28, 28)
    assert ds.test_x.shape == (N_TEST, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28)
    assert ds.num_classes == 10
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    # Official split, order kept: labels match the files exactly.
    assert ds.train_y.tolist() == arrays[IDX_FILES[1]].tolist()
    assert ds.test_y.tolist() == arrays[IDX_FILES[3]].tolist()
    # Pixels are the files' values prepared as ds.preprocess says.
    if ds.preprocess == "paper":
        expected = arrays[IDX_FILES[2]].astype(np.float64) / 255.0
    else:
        raw_train = arrays[IDX_FILES[0]].astype(np.float64)
        mean, std = raw_train.mean(), raw_train.std(ddof=1)
        expected = (arrays[IDX_FILES[2]].astype(np.float64) - mean) / std
    np.testing.assert_allclose(ds.test_x.numpy()[:, 0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashionmnist"])
def test_loads_flat_folder(tmp_path: Path, name: str, compress: bool) -> None:
    arrays = write_dataset(tmp_path, compress=compress)
    before = snapshot(tmp_path)
    ds = load_dataset(name, data_dir=tmp_path)
    check_loaded(ds, arrays, name)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "subfolder"), [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")]
)
def test_loads_torchvision_layout(tmp_path: Path, name: str, subfolder: str) -> None:
    arrays = write_dataset(tmp_path / subfolder / "raw", compress=True)
    ds = load_dataset(name, data_dir=str(tmp_path))
    check_loaded(ds, arrays, name)


def test_mixed_plain_and_gzip_files(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path)
    for stem in IDX_FILES[2:]:
        (tmp_path / stem).unlink()
        write_idx(tmp_path / stem, arrays[stem], compress=True)
    check_loaded(load_dataset("mnist", data_dir=tmp_path), arrays, "mnist")
    check_loaded(load_dataset("mnist", data_dir=tmp_path, preprocess="standard"), arrays, "mnist")


def test_data_dir_none_explains_the_flag() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "--data-dir PATH" in message
    assert all(stem in message for stem in IDX_FILES)
    assert "\n" not in message


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("fashionmnist", data_dir=missing)
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "no" in message and "download" in message
    assert all(stem in message for stem in IDX_FILES)
    assert not missing.exists()


def test_one_missing_file_is_named(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    (tmp_path / IDX_FILES[3]).unlink()
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert f"{tmp_path} is missing {IDX_FILES[3]};" in message
    for present in IDX_FILES[:3]:
        assert f"missing {present}" not in message
    assert ".gz" in message and "\n" not in message
    assert snapshot(tmp_path) == before


def test_count_mismatch(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path)
    write_idx(tmp_path / IDX_FILES[1], arrays[IDX_FILES[1]][:-1])
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match=rf"has {N_TRAIN} images but .* has {N_TRAIN - 1} labels"):
        load_dataset("mnist", data_dir=tmp_path)
    assert snapshot(tmp_path) == before


def test_bad_magic_in_dataset_file(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    path = tmp_path / IDX_FILES[0]
    path.write_bytes(b"\xff\xff" + path.read_bytes()[2:])
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="not an IDX file") as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert IDX_FILES[0] in str(info.value)
    assert snapshot(tmp_path) == before


def test_truncated_dataset_file(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    path = tmp_path / IDX_FILES[2]
    path.write_bytes(path.read_bytes()[:-1])
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="truncated") as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert IDX_FILES[2] in str(info.value)
    assert snapshot(tmp_path) == before


def test_images_must_be_3d(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path)
    write_idx(tmp_path / IDX_FILES[0], arrays[IDX_FILES[0]].reshape(N_TRAIN, -1))
    with pytest.raises(DataError, match="3-D"):
        load_dataset("mnist", data_dir=tmp_path)


def test_labels_out_of_range(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path)
    labels = arrays[IDX_FILES[3]].copy()
    labels[0] = 10
    write_idx(tmp_path / IDX_FILES[3], labels)
    with pytest.raises(DataError, match="0..9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_rejects_other_shape_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(1, 28, 28\)"):
        load_dataset("mnist", data_dir=tmp_path, input_shape=(1, 8, 8))
