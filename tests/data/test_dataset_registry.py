"""The dataset registry: names, lookup errors, and a torch-free import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hil.data
from hil.data import DATASETS, dataset_names, load_dataset
from hil.errors import HilError, UnknownNameError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ["cifar10", "digits", "fashionmnist", "gsc", "mnist", "mnist5k", "svhn", "synthetic"]


def test_dataset_names_lists_builtins() -> None:
    # Subset: other code may register more datasets in the same process.
    assert set(BUILTIN) <= set(dataset_names())
    assert dataset_names() == sorted(dataset_names())
    assert all(name in DATASETS for name in BUILTIN)


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("imagenet")
    message = str(info.value)
    assert "imagenet" in message
    for name in BUILTIN:
        assert name in message
    assert isinstance(info.value, HilError)


def test_dataset_is_reexported_lazily() -> None:
    from hil.data._dataset import Dataset

    assert hil.data.Dataset is Dataset
    with pytest.raises(AttributeError):
        _ = hil.data.NoSuchThing


def test_every_builtin_entry_resolves_to_a_callable() -> None:
    for name in BUILTIN:
        assert callable(DATASETS.get(name))


def test_importing_hil_data_does_not_import_torch_or_numpy() -> None:
    code = (
        "import sys, hil.data\n"
        "names = hil.data.dataset_names()\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "print(','.join(names)); print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].split(",") == BUILTIN
