"""CIFAR-10, SVHN and Speech Commands loaders on tiny files written here in the real formats."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import write_cifar
from scipy.io import savemat, wavfile

from hil.data import load_dataset
from hil.data.speech import CLASSES, mfcc
from hil.errors import DataError


def test_cifar10_loads_from_python_batches(tmp_path: Path) -> None:
    data = load_dataset("cifar10", data_dir=write_cifar(tmp_path))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.num_classes == 10 and 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0
    standard = load_dataset("cifar10", data_dir=tmp_path, preprocess="standard")
    assert abs(float(standard.train_x.mean())) < 1e-5
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())
    image = raw[b"data"][0].reshape(3, 32, 32)  # channel-major, as CIFAR stores it
    again = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py")
    assert np.allclose(np.corrcoef(again.test_x[0].numpy().ravel(), image.ravel())[0, 1], 1.0)


def test_cifar10_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, ("echo owned > owned.txt",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not Path("owned.txt").exists()


def test_cifar10_missing_files(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("cifar10")


def test_svhn_loads_mat_files_and_maps_label_ten_to_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name, count in (("train_32x32.mat", 6), ("test_32x32.mat", 3)):
        savemat(tmp_path / name, {"X": rng.integers(0, 256, (32, 32, 3, count), dtype=np.uint8),
                                  "y": np.array([[10], [1], [2], [3], [4], [5]][:count], dtype=np.uint8)})
    data = load_dataset("svhn", data_dir=tmp_path)
    assert data.train_x.shape == (6, 3, 32, 32) and data.test_y.tolist() == [0, 1, 2]
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_dataset("svhn", data_dir=tmp_path)


def write_gsc(root: Path) -> Path:
    rng = np.random.default_rng(2)
    tests = []
    for word in ("yes", "no", "up", "cat"):
        (root / word).mkdir(parents=True)
        for index in range(3):
            tone = np.sin(2 * np.pi * (300 + 200 * CLASSES.index(word) if word in CLASSES else 950) *
                          np.arange(16000) / 16000) * 0.3 + 0.01 * rng.standard_normal(16000)
            wavfile.write(root / word / f"clip{index}.wav", 16000, (tone * 32767).astype(np.int16))
            if index == 0:
                tests.append(f"{word}/clip{index}.wav")
    (root / "_background_noise_").mkdir()
    wavfile.write(root / "_background_noise_" / "white.wav", 16000,
                  (0.1 * rng.standard_normal(48000) * 32767).astype(np.int16))
    (root / "testing_list.txt").write_text("\n".join(tests) + "\n")
    return root


def test_gsc_builds_mfcc_features_with_silence_and_unknown(tmp_path: Path) -> None:
    root = write_gsc(tmp_path / "speech_commands_v0.02")
    data = load_dataset("gsc", data_dir=root)
    assert data.train_x.shape[1:] == (1, 10, 49) and data.num_classes == 12
    labels = set(data.train_y.tolist()) | set(data.test_y.tolist())
    assert {CLASSES.index("yes"), CLASSES.index("silence"), CLASSES.index("unknown")} <= labels
    assert (root / "hil-mfcc-v2.npz").is_file()
    again = load_dataset("gsc", data_dir=root)  # from the cache, same tensors
    assert np.array_equal(again.train_x.numpy(), data.train_x.numpy())
    # The paper's only preprocessing is the MFCC itself: features come as computed, not rescaled.
    assert data.preprocess == "paper" and abs(float(data.train_x.mean())) > 1.0
    standard = load_dataset("gsc", data_dir=root, preprocess="standard")
    assert abs(float(standard.train_x.mean())) < 1e-4


def test_mfcc_separates_tones_and_has_the_mlperf_shape() -> None:
    t = np.arange(16000) / 16000
    low, high = mfcc(np.sin(2 * np.pi * 300 * t)), mfcc(np.sin(2 * np.pi * 2000 * t))
    assert low.shape == (10, 49)
    assert np.abs(low - high).mean() > 1.0
    assert mfcc(np.zeros(8000)).shape == (10, 49)  # short clips are padded


def test_gsc_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("gsc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="testing_list.txt"):
        load_dataset("gsc", data_dir=tmp_path / "empty")


def test_cifar10_refuses_a_pickle_that_asks_for_memory(tmp_path: Path) -> None:
    """Issue 18, finding 5: ``bytes(2**40)`` in a batch escaped as a MemoryError (or took a terabyte)."""
    write_cifar(tmp_path)

    class Greedy:
        def __reduce__(self):  # noqa: ANN204
            return (bytes, (2**40,))

    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    for protocol in (2, 4):
        batch.write_bytes(pickle.dumps({b"data": Greedy(), b"labels": [0]}, protocol=protocol))
        with pytest.raises(DataError, match="refusing"):
            load_dataset("cifar10", data_dir=tmp_path)
    with batch.open("wb") as handle:  # a sparse file far larger than any batch: refused before it is read
        handle.truncate(300 << 20)
    with pytest.raises(DataError, match="is not a CIFAR-10 python batch"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_gsc_cache_is_trusted_only_for_the_files_it_was_made_from(tmp_path: Path) -> None:
    """Issue 18, finding 5: a pickled cache showed a raw ValueError; a cache alone was taken as the dataset."""
    root = write_gsc(tmp_path / "speech")
    data = load_dataset("gsc", data_dir=root)
    cache = root / "hil-mfcc-v2.npz"
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "testing_list.txt").write_text("yes/clip0.wav\n")
    (lone / "hil-mfcc-v2.npz").write_bytes(cache.read_bytes())  # a well-formed cache, but no clips beside it
    with pytest.raises(DataError, match="no keyword folders"):
        load_dataset("gsc", data_dir=lone)
    np.savez(cache, train_x=np.array([object()], dtype=object), train_y=np.zeros(1), test_x=np.zeros(1),
             test_y=np.zeros(1), fingerprint=np.array("x"))
    again = load_dataset("gsc", data_dir=root)  # the pickled cache is ignored and rebuilt
    assert np.array_equal(again.train_x.numpy(), data.train_x.numpy())
    cache.write_bytes(b"not a zip at all")
    assert np.array_equal(load_dataset("gsc", data_dir=root).test_x.numpy(), data.test_x.numpy())
