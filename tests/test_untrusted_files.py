"""Files a user may receive end in one line naming the fix, never a traceback (issue 18, finding 5)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hil.backends.device.emulator import EmulatorConfig
from hil.backends.device.transport import ReplayTransport
from hil.calibration.design import CalibrationDesign
from hil.calibration.job import calibrate
from hil.calibration.profile import read_profile, write_profile
from hil.cli import app
from hil.errors import ConfigError, HilError

HEADER = json.dumps({"hilrec": 1})


@pytest.mark.parametrize("body", [
    HEADER + "\n[1, 2]\n",  # an event that is not a table
    HEADER + '\n{"d": "w"}\n',  # no payload
    HEADER + '\n{"d": "w", "x": "zz"}\n',  # not hex
    HEADER + '\n{"d": "q", "x": "00"}\n',  # neither read nor write
    HEADER + '\n{"d": "r", "x": 5}\n',
    HEADER + "\nnot json\n", "", '{"hilrec": 2}\n',
])
def test_a_malformed_recording_is_one_clear_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text(body)
    with pytest.raises(ConfigError, match="is not a hil recording"):
        ReplayTransport(path)
    result = CliRunner().invoke(app, ["device", "info", "--device", f"replay:{path}"])
    assert result.exit_code == 1 and "Traceback" not in result.output and "not a hil recording" in result.output


@pytest.mark.parametrize(("text", "message"), [
    ("seed = -5\n", r"seed must be an integer in \[0"),  # ended in numpy's ValueError
    ("rows = 65535\ncols = 65535\n", "tile memory"),  # would have allocated 137 GB of tiles
    ("sigma_add = [\n", "is not valid TOML"),
    ("[device]\nrows = 'x'\n", "rows must be an integer"),
])
def test_a_malformed_emulator_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "device.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        EmulatorConfig.from_toml(path)


@pytest.fixture(scope="module")
def profile_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("profile")
    path = write_profile(calibrate("sim", CalibrationDesign(samples=1500)).profile, folder / "p.json")
    return json.loads(path.read_text())


def _leaves(data: object, prefix: tuple = ()) -> list[tuple]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            found += [(*prefix, key), *_leaves(value, (*prefix, key))]
    elif isinstance(data, list):
        for index, value in enumerate(data[:2]):
            found += [(*prefix, index), *_leaves(value, (*prefix, index))]
    return found


WEIRD = st.sampled_from([None, "x", [], {}, -1, 0, 1e308, float("nan"), True, [1, "a"], {"a": None}, 10**30])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_profile_reads_or_fails_with_a_hil_error(profile_data: dict, tmp_path: Path,
                                                          data: st.DataObject) -> None:
    """Before: gains/offsets that were not numbers escaped as ValueError/TypeError/KeyError from the twin/device."""
    broken = copy.deepcopy(profile_data)
    where = data.draw(st.sampled_from(_leaves(broken)))
    node = broken
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = data.draw(WEIRD)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(broken))
    try:
        profile = read_profile(path)
        profile.noise_card()
        profile.correction()
    except HilError:
        pass
