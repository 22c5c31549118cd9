"""`hil calibrate`, `hil calibrate check` and `hil train --calibration` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app

runner = CliRunner()
DEVICE = "sigma_add = 0.05\nsigma_mul = 0.03\nseed = 7\ngain_spread = 0.05\noffset_spread = 0.1\n"


@pytest.fixture
def device_toml(tmp_path: Path) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(DEVICE)
    return path


def test_calibrate_writes_profile_report_and_table(tmp_path: Path, device_toml: Path) -> None:
    out = tmp_path / "profile.toml"
    result = runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device_toml), "--out", str(out),
                                 "--report", str(tmp_path / "calib")])
    assert result.exit_code == 0, result.output
    for text in ("σa", "σm", "gain (64 columns)", "lack of fit", "gaussianity", "noise order", "drift", "CRLB"):
        assert text in result.stdout
    assert sorted(p.name for p in (tmp_path / "calib").iterdir()) == [
        "columns.png", "columns.svg", "residuals.png", "residuals.svg", "variance.png", "variance.svg"]
    before = out.read_text()
    again = runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device_toml), "--out", str(out)])
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.stderr
    assert out.read_text() == before
    check = runner.invoke(app, ["calibrate", "check", "--device", "sim", "--config", str(device_toml),
                                "--profile", str(out), "--json"])
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["valid"] is True
    drifted = tmp_path / "drifted.toml"
    drifted.write_text(DEVICE.replace("sigma_add = 0.05", "sigma_add = 0.07"))
    check = runner.invoke(app, ["calibrate", "check", "--device", "sim", "--config", str(drifted),
                                "--profile", str(out)])
    assert check.exit_code == 3 and "no longer matches" in check.stdout
    aged = tmp_path / "aged.toml"  # σa as calibrated, but the columns' gains and offsets moved since
    aged.write_text(DEVICE + "gain_aging = 0.1\noffset_aging = 0.3\n")
    check = runner.invoke(app, ["calibrate", "check", "--device", "sim", "--config", str(aged),
                                "--profile", str(out), "--json"])
    verdict = json.loads(check.stdout)
    assert check.exit_code == 3 and verdict["valid"] is False
    failing = {item["name"] for item in verdict["items"] if not item["ok"]}
    assert failing == {"gain (columns outside)", "offset (columns outside)"}  # σa and σm still match


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "sim", "--samples", "10"], "--samples"),
    (["--out", "x.toml"], "--device is required"),
    (["--device", "tcp:127.0.0.1:1"], "cannot connect"),
    (["--device", "sim", "--budget-s", "0.000001"], "raise --budget-s or lower --samples"),
    (["--device", "serial:/dev/null", "--config", "d.toml"], "goes with --device sim only"),
])
def test_bad_calibration_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "p.toml"
    result = runner.invoke(app, ["calibrate", *args, *([] if "--out" in args else ["--out", str(out)])])
    assert result.exit_code != 0
    assert message in result.stderr or message in result.output
    assert not out.exists()


def test_check_with_a_newer_profile_is_refused(tmp_path: Path, device_toml: Path) -> None:
    out = tmp_path / "p.json"
    assert runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device_toml), "--out", str(out),
                               "--samples", "2000"]).exit_code == 0
    data = json.loads(out.read_text())
    data["version"] = 99
    out.write_text(json.dumps(data))
    result = runner.invoke(app, ["calibrate", "check", "--device", "sim", "--profile", str(out)])
    assert result.exit_code == 1 and "newer than this hil reads" in result.stderr


def test_train_with_a_calibration_profile(tmp_path: Path, device_toml: Path) -> None:
    profile = tmp_path / "p.toml"
    assert runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device_toml), "--out",
                               str(profile), "--samples", "2000"]).exit_code == 0
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--calibration",
                                 str(profile), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    noise = json.loads(result.stdout)["noise"]
    assert noise["sites"] == "matmul" and noise["sigma_mul"] == pytest.approx(0.03, rel=0.1)
    assert [o["site"] for o in noise["overrides"]] == ["fc1", "fc2", "fc3", "fc4"]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["calibration"]["profile"] == str(profile)
    assert metadata["calibration"]["sigma_add"] == pytest.approx(0.05, rel=0.1)
    clash = runner.invoke(app, ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--calibration",
                                str(profile), "--sigma-add", "0.1", "--out", str(tmp_path / "x")])
    assert clash.exit_code == 1 and "--calibration sets the noise" in clash.stderr


def test_calibrate_over_a_pty_emulator_hits_the_truth(tmp_path: Path, device_toml: Path) -> None:
    from hil.backends.device.emulator import EmulatorProcess

    with EmulatorProcess("--port", "pty", "--config", str(device_toml)) as emulator:
        out = tmp_path / "p.json"
        result = runner.invoke(app, ["calibrate", "--device", f"serial:{emulator.address}", "--out", str(out),
                                     "--json"])
    assert result.exit_code == 0, result.output
    estimates = json.loads(result.stdout)["estimates"]
    assert estimates["sigma_add"]["value"] == pytest.approx(0.05, rel=0.05)
    assert estimates["sigma_mul"]["value"] == pytest.approx(0.03, rel=0.05)
    assert estimates["sigma_add"]["low"] <= 0.05 <= estimates["sigma_add"]["high"] or \
        abs(estimates["sigma_add"]["value"] - 0.05) < 3 * estimates["sigma_add"]["se"]


def test_check_compares_a_network_on_the_device_and_on_sim(tmp_path: Path) -> None:
    from hil.config import TrainConfig
    from hil.training import train

    device = tmp_path / "device.toml"
    device.write_text("sigma_add = 0.3\nsigma_mul = 0.1\nseed = 3\ngain_spread = 0.1\noffset_spread = 0.2\n")
    profile = tmp_path / "p.toml"
    assert runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device), "--out", str(profile),
                               "--samples", "4000"]).exit_code == 0
    train(TrainConfig(model="mlp", dataset="digits", epochs=5), tmp_path / "mlp", keep_epochs=False)
    result = runner.invoke(app, ["calibrate", "check", "--device", "sim", "--config", str(device), "--profile",
                                 str(profile), "--checkpoint", str(tmp_path / "mlp"), "--json"])
    assert result.exit_code == 0, result.output
    network = json.loads(result.stdout)["network"]
    assert network["agree"] and abs(network["device"]["mean"] - network["sim"]["mean"]) < 0.05


def test_gain_and_offset_are_corrected_by_the_device_backend(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from hil.backends.base import SiteCall
    from hil.backends.device.backend import DeviceBackend
    from hil.backends.device.driver import AmvmDriver
    from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, LoopbackTransport
    from hil.calibration.profile import read_profile

    device = tmp_path / "device.toml"
    device.write_text("seed = 4\ngain_spread = 0.2\noffset_spread = 0.3\nsigma_add = 0.01\nfull_scale = 32.0\n")
    profile = tmp_path / "p.toml"
    assert runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device), "--out", str(profile),
                               "--samples", "4000"]).exit_code == 0
    estimates = read_profile(profile).estimates
    correction = (np.array(estimates["gain"]["values"]), np.array(estimates["offset"]["values"]))
    x, w = torch.randn(50, 100), torch.randn(30, 100)
    exact = x @ w.T
    errors = []
    for fix in (None, correction):
        emulator = DeviceEmulator(EmulatorConfig.from_toml(device))
        backend = DeviceBackend(AmvmDriver(LoopbackTransport(emulator), timeout=0.5), correction=fix)
        errors.append((backend.linear(x, w, None, SiteCall(1, "1:fc1", "linear")) - exact).abs().mean().item())
    assert errors[1] < errors[0] / 5, errors


def test_twin_asked_for_a_drift_its_card_lacks_warns_in_one_line(tmp_path: Path) -> None:
    from hil.calibration.profile import read_profile
    from hil.config import TrainConfig
    from hil.training import train

    device, profile = tmp_path / "device.toml", tmp_path / "p.toml"
    device.write_text(DEVICE.replace("seed = 7", "seed = 2"))  # a steady run (seed 7 records σa drift by chance)
    assert runner.invoke(app, ["calibrate", "--device", "sim", "--config", str(device), "--out", str(profile),
                               "--samples", "4000"]).exit_code == 0
    assert read_profile(profile).noise_card().drift is None
    train(TrainConfig(model="mlp", dataset="digits", epochs=1), tmp_path / "mlp", keep_epochs=False)
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "mlp"), "--backend",
                                 f"twin:{profile}#elapsed=1h", "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: twin: the card has no drift with time"), lines
    assert json.loads(result.stdout)["accuracy"]["mean"] > 0
