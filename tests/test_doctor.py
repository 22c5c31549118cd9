"""``hil doctor`` and the one-time warning about a pure-Python COBS (issue 18, finding 8)."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from hil.backends.device import framing
from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig
from hil.backends.device.emulator.loopback import LoopbackTransport
from hil.cli import app


def test_doctor_reports_versions_codecs_and_cuda() -> None:
    result = CliRunner().invoke(app, ["doctor", "--json"])
    checks = {check["name"]: check for check in json.loads(result.output)["checks"]}
    assert result.exit_code == (0 if all(c["ok"] for c in checks.values()) else 1)
    for name in ("hil", "torch", "cobs", "crc32c", "CUDA", "cobs C extension", "crc32c hardware", "serial ports",
                 "VISA backends"):
        assert name in checks
    assert checks["cobs C extension"]["value"] == ("yes" if framing.cobs_is_native() else "no (pure Python)")


def test_a_pure_python_cobs_is_reported_and_warned_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing.cobs, "_using_extension", False)
    monkeypatch.setattr(framing, "_warned_slow_codec", False)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1 and "pure Python" in result.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            AmvmDriver(LoopbackTransport(DeviceEmulator(EmulatorConfig(rows=4, cols=2)))).close()
    slow = [w for w in caught if "pure-Python fallback" in str(w.message)]
    assert len(slow) == 1 and slow[0].category is RuntimeWarning
