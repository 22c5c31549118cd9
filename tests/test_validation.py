"""The shared value checks (`hil.validation`) and the files they guard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hil.calibration.profile import read_profile
from hil.errors import ConfigError
from hil.validation import check_choice, check_int, check_keys, check_number, check_table


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_accepts_python_and_numpy_integers(value: object) -> None:
    result = check_int(value, "n", low=1, high=5)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [(True, {}, "n must be an integer, got True"),
     (2.0, {"low": 1}, "n must be an integer ≥ 1, got 2.0"),
     ("2", {"low": 1}, "n must be an integer ≥ 1, got '2'"),
     (0, {"low": 1, "high": 9}, "n must be an integer in [1, 9], got 0"),
     (10, {"high": 9}, "n must be an integer ≤ 9, got 10"),
     (0, {"low": 1, "note": "(per site)"}, "n must be an integer ≥ 1 (per site), got 0")],
)
def test_check_int_refuses_with_one_line(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_int(value, "n", **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [(True, {}, "x must be a finite number, got True"),
     ("0.1", {"low": 0}, "x must be a finite number ≥ 0, got '0.1'"),
     (math.inf, {"low": 0}, "x must be a finite number ≥ 0, got inf"),
     (math.nan, {}, "x must be a finite number, got nan"),
     (0, {"positive": True}, "x must be a finite number > 0, got 0"),
     (-1, {"low": 0, "note": "of seconds"}, "x must be a finite number of seconds ≥ 0, got -1"),
     (math.nan, {"finite": False, "low": 0}, "x must be a number ≥ 0, got nan")],
)
def test_check_number_refuses_with_one_line(value: object, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_number(value, "x", **kwargs)
    assert str(info.value) == message


def test_check_number_returns_floats_and_keeps_nan_when_allowed() -> None:
    assert check_number(np.float32(0.5), "x") == 0.5 and type(check_number(2, "x")) is float
    assert math.isnan(check_number(math.nan, "loss", finite=False))


def test_check_keys_choice_and_table() -> None:
    check_keys({"a": 1}, ("a", "b"), "config")
    with pytest.raises(ConfigError, match=r"^unknown config key\(s\) c, d; valid keys: a, b$"):
        check_keys({"d": 1, "c": 2, "a": 3}, ("b", "a"), "config")
    with pytest.raises(ConfigError, match=r"^unknown key\(s\) z in f.toml; valid keys: a$"):
        check_keys({"z": 1}, ("a",), "", where=" in f.toml")
    assert check_choice("add-first", "order", ("mul-first", "add-first")) == "add-first"
    with pytest.raises(ConfigError, match="order must be one of mul-first, add-first, got 3"):
        check_choice(3, "order", ("mul-first", "add-first"))
    assert check_table({"k": 1}, "t") == {"k": 1}
    with pytest.raises(ConfigError, match="t must be a table, got list"):
        check_table([1], "t")


def _profile(tmp_path: Path, **changes: object) -> Path:
    data: dict[str, object] = {"version": 1, "device": {"capabilities": {"rows": 8}}, "created": "now",
                               "seconds": 1.0, "order": "mul-first",
                               "estimates": {"sigma_add": {"value": 0.01}, "sigma_mul": {"value": 0.02}}}
    data.update(changes)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    return path


def test_profile_reads_back_checked_fields(tmp_path: Path) -> None:
    profile = read_profile(_profile(tmp_path))
    assert (profile.sigma_add, profile.sigma_mul, profile.order, profile.version) == (0.01, 0.02, "mul-first", 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"version": True}, "version must be an integer ≥ 1, got True"),
     ({"device": [1, 2]}, "device must be a table, got list"),
     ({"seconds": "long"}, "seconds must be a finite number ≥ 0, got 'long'"),
     ({"order": "sideways"}, "order must be one of mul-first, add-first, got 'sideways'"),
     ({"created": 5}, "created must be a string, got int"),
     ({"estimates": {"sigma_add": {"value": "0.1"}, "sigma_mul": {"value": 0.0}}},
      "estimates.sigma_add.value must be a finite number ≥ 0, got '0.1'")],
)
def test_untrusted_profile_fields_get_one_line_errors(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_profile(_profile(tmp_path, **changes))
    text = str(info.value)
    assert message in text and "calibrate again" in text and "\n" not in text
