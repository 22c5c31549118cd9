"""End to end: `hil device emulate` in its own process, a network evaluated through a pty and TCP,
record and replay, and the one-line errors of bad device input."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.backends.device.emulator import EmulatorProcess
from hil.cli import app
from hil.config import TrainConfig
from hil.training import train

runner = CliRunner()


def start_emulator(*args: str) -> tuple[EmulatorProcess, str]:
    emulator = EmulatorProcess(*args)
    return emulator, emulator.address


def stop(emulator: EmulatorProcess) -> None:
    emulator.stop()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("device") / "mlp"
    train(TrainConfig(model="mlp", dataset="digits", epochs=5), out, keep_epochs=False)
    return out


@pytest.fixture(scope="module")
def pty_device() -> Iterator[str]:
    process, path = start_emulator("--port", "pty", "--sigma-mul", "0.1", "--seed", "1")
    yield path
    stop(process)


def evaluate(checkpoint: Path, backend: str, *extra: str) -> dict:
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--backend", backend, "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["accuracy"]


def test_device_info_over_the_pty(pty_device: str) -> None:
    result = runner.invoke(app, ["device", "info", "--device", f"serial:{pty_device}", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["protocol"] == "AMVM/1" and data["identity"].startswith("hil,AMVM emulator")
    assert data["capabilities"]["rows"] == 256


def test_accuracy_through_the_pty_matches_sim_at_the_emulators_sigma(checkpoint: Path, pty_device: str) -> None:
    device = evaluate(checkpoint, f"device:serial:{pty_device}", "--repeats", "4")
    sim = evaluate(checkpoint, "sim", "--sigma-mul", "0.1", "--sites", "matmul", "--repeats", "4")
    clean = evaluate(checkpoint, "sim")
    spread = max(device["std"], sim["std"], 0.01)
    assert abs(device["mean"] - sim["mean"]) < 3 * spread + 0.02, (device, sim)
    assert device["mean"] < clean["mean"] + 0.01


def test_tcp_record_and_replay(checkpoint: Path, tmp_path: Path) -> None:
    process, address = start_emulator("--tcp", "127.0.0.1:0", "--sigma-add", "0.05", "--seed", "2")
    try:
        record = tmp_path / "traffic.hilrec"
        live = evaluate(checkpoint, f"device:tcp:{address}#record={record}", "--repeats", "2")
    finally:
        stop(process)
    replayed = evaluate(checkpoint, f"device:replay:{record}", "--repeats", "2")
    assert replayed["accuracies"] == live["accuracies"]
    assert 0.5 < live["mean"] <= 1.0


def test_replay_refuses_a_host_that_sends_something_else(checkpoint: Path, tmp_path: Path) -> None:
    process, address = start_emulator("--tcp", "127.0.0.1:0")
    try:
        record = tmp_path / "traffic.hilrec"
        evaluate(checkpoint, f"device:tcp:{address}#record={record}")
    finally:
        stop(process)
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--backend",
                                 f"device:replay:{record}", "--batch-size", "7"])
    assert result.exit_code == 1
    assert "different bytes than in the recording" in result.stderr


@pytest.mark.parametrize(("backend", "message"), [
    ("device:usb:foo", "unknown device transport or driver 'usb'"),
    ("device:serial:/dev/does-not-exist", "cannot open serial port /dev/does-not-exist"),
    ("device:tcp:127.0.0.1:1", "cannot connect to 127.0.0.1:1"),
    ("device:tcp:nohost", "bad TCP address"),
    ("device:replay:/nonexistent.hilrec", "does not exist"),
    ("device:serial:/dev/null#speed=9", "bad device option"),
])
def test_bad_device_addresses_are_one_line_errors(checkpoint: Path, backend: str, message: str) -> None:
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--backend", backend])
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_port_where_nobody_answers_times_out_clearly() -> None:
    master, slave = os.openpty()
    try:
        started = time.monotonic()
        result = runner.invoke(app, ["device", "info", "--device", f"serial:{os.ttyname(slave)}", "--timeout", "0.1"])
        assert result.exit_code == 1
        assert "did not answer HELLO within 0.1 s" in result.stderr
        assert time.monotonic() - started < 5
    finally:
        os.close(master)
        os.close(slave)


def test_a_tile_larger_than_the_device_is_refused_by_name(tmp_path: Path) -> None:
    process, address = start_emulator("--tcp", "127.0.0.1:0")
    try:
        from hil.backends.device.backend import open_driver

        driver = open_driver(f"tcp:{address}", timeout=1.0)
        import numpy as np

        from hil.backends.device.transport import DeviceError

        with pytest.raises(DeviceError, match="tile 512×8 exceeds 256×64"):
            driver.load_tile(0, np.zeros((512, 8), dtype=np.int16))
        driver.close()
    finally:
        stop(process)


def test_emulate_needs_exactly_one_place_to_listen() -> None:
    result = runner.invoke(app, ["device", "emulate"])
    assert result.exit_code == 1 and "exactly one of --port pty or --tcp" in result.stderr
    result = runner.invoke(app, ["device", "emulate", "--port", "/dev/ttyS0"])
    assert result.exit_code == 1 and "--port must be 'pty'" in result.stderr


def test_accuracy_through_visa_over_the_pty_matches_sim(checkpoint: Path) -> None:
    process, path = start_emulator("--port", "pty", "--framing", "scpi", "--sigma-mul", "0.1", "--seed", "1")
    try:
        device = evaluate(checkpoint, f"device:visa:ASRL{path}::INSTR", "--repeats", "2")
    finally:
        stop(process)
    sim = evaluate(checkpoint, "sim", "--sigma-mul", "0.1", "--sites", "matmul", "--repeats", "4")
    assert abs(device["mean"] - sim["mean"]) < 3 * max(device["std"], sim["std"], 0.01) + 0.02, (device, sim)


def test_device_layers_put_only_named_sites_on_the_device(checkpoint: Path, pty_device: str) -> None:
    only_last = evaluate(checkpoint, f"device:serial:{pty_device}", "--device-layers", "7:fc4", "--repeats", "2")
    clean = evaluate(checkpoint, "sim")
    assert abs(only_last["mean"] - clean["mean"]) < 0.05
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--device-layers", "1:fc1"])
    assert result.exit_code == 1 and "--device-layers needs a device backend" in result.stderr
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(checkpoint), "--backend",
                                 f"device:serial:{pty_device}", "--device-layers", "2:relu1,7:fc9"])
    assert result.exit_code == 1
    assert "device layers 2:relu1, 7:fc9 are not Linear/Conv sites" in result.stderr
