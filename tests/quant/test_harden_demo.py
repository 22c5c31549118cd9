"""`hil harden` (resumable study) and `hil demo` (the whole pipeline) end to end, at small sizes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hil.cli import app

runner = CliRunner()


def test_harden_prints_the_table_writes_the_plot_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["harden", "--model", "mlp", "--dataset", "digits", "--bits", "4", "--scaling", "dynamic,const:1",
            "--repeats", "2", "--epochs", "1", "--walk-repeats", "1", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for label in ("fp32", "4-bit dynamic", "4-bit const:1", "fp32 + noisy training", "4-bit const:1 + noisy"):
        assert label in result.stdout
    summary = json.loads((out / "harden.json").read_text())
    assert len(summary["variants"]) == 6 and summary["train_sigma"] > 0
    assert all(len(v["accuracies"]) == 2 for v in summary["variants"])
    assert (out / "tradeoff.png").is_file() and (out / "tradeoff.svg").is_file()
    checkpoints = sorted(p.stat().st_mtime for p in out.glob("runs/*/seed-*/model.safetensors"))
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["variants"] == summary["variants"]  # same numbers, nothing retrained
    assert sorted(p.stat().st_mtime for p in out.glob("runs/*/seed-*/model.safetensors")) == checkpoints


def test_harden_rejects_bad_variants_before_training(tmp_path: Path) -> None:
    result = runner.invoke(app, ["harden", "--bits", "3", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "one of 2, 4, 8, 16" in result.stderr and "--bits" in result.stderr
    result = runner.invoke(app, ["harden", "--scaling", "const:-1", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "const:<s>" in result.stderr and "--scaling" in result.stderr
    assert not (tmp_path / "x" / "runs").exists()


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["calibration"]["sigma_add"]["value"] / 0.6 - 1) < 0.05
    strategies = [row["strategy"] for row in summary["repetitions"]["strategies"]]
    assert strategies == ["none", "uniform", "guided-1/mu", "guided-greedy"]
    report = (out / "report.md").read_text()
    for heading in ("## 1. Calibration", "## 2. Training", "## 3. Walking Noise", "## 4. Repeated executions"):
        assert heading in report
    # The paper's setting on the Gaussian model, and a verdict that says whether guidance carried over.
    assert [row["strategy"] for row in summary["paper_setting"]["strategies"]] == ["uniform", "guided-1/mu"]
    assert summary["paper_setting"]["sigma_source"].startswith("global μ of the walk")
    assert summary["verdict"][0].startswith("On the device, guided-1/μ ")
    assert "### Verdict" in report and summary["verdict"][1] in report
    assert summary["verdict"][0] in result.stdout
    # The walk on the device and the repetitions it guides, compared on the device.
    assert [row["layer"] for row in summary["device_walk"]["layers"]] == ["1:fc1", "3:fc2", "5:fc3", "7:fc4"]
    assert [row["strategy"] for row in summary["device_guided"]["strategies"]] == ["uniform", "guided-snr"]
    assert "### Guided by a walk on the device" in report and summary["verdict"][-2] in report
    assert summary["verdict"][-2].startswith("Guided by the SNR walk on the device (guided-snr), repetitions ")
    # The marginal walk on the device: executions ±1 per layer, the exchange it keeps, compared on fresh draws.
    chosen = summary["marginal_walk"]["rounds"][-1]["chosen"]
    assert sum(chosen) == 8 and summary["marginal_walk"]["rounds"][0]["executions"] == [2, 2, 2, 2]
    guided = summary["marginal_guided"]["strategies"]
    assert [row["strategy"] for row in guided] == ["uniform", "guided-marginal"]
    assert list(guided[1]["executions"].values()) == chosen
    assert summary["verdict"][-1].startswith("Guided by the marginal walk on the device (guided-marginal), ")
    assert summary["verdict"][-1] in report and "Marginal walk on the device" in report
    for image in ("calibration/variance.png", "walk/plots/curves.png", "walk/plots/mu.png"):
        assert (out / image).is_file() and image in report
    again = runner.invoke(app, ["demo", "--out", str(out), "--quick"])
    assert again.exit_code == 1 and "not empty" in again.stderr
    again = runner.invoke(app, ["demo", "--out", str(out / "report.md")])
    assert again.exit_code == 1 and "is a file" in again.stderr
