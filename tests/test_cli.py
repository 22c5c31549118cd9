"""The ``hil`` command line: output formats, exit codes and one-line error messages.

Most tests drive the typer app in-process with ``typer.testing.CliRunner``. Under typer 0.29
(which vendors click as ``typer._click``) the runner keeps ``result.stdout`` and
``result.stderr`` apart and ``result.output`` interleaves both. An uncaught exception also
gives ``exit_code == 1`` there, so every error test additionally checks that the exception
left behind is the ``SystemExit`` of a handled error and that stderr holds the ``error:`` line.
Two subprocess tests prove real exit codes and the absence of tracebacks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import error_line, plain, snapshot
from typer.testing import CliRunner

from hil._version import __version__
from hil.cli import app
from hil.errors import CheckpointError, ConfigError

# digits (1,437 training images) in three steps per epoch: about a second per run.
TRAIN_FAST = ["--dataset", "digits", "--model", "mlp", "--epochs", "1", "--batch-size", "512"]


def invoke(*args: object, **kwargs: object):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)




@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 1-epoch MLP on digits trained through the CLI, and its ``--json`` summary.

    Shared read-only: tests that change it work on a copy (``checkpoint_copy``).
    """
    out = tmp_path_factory.mktemp("trained") / "run"
    result = invoke("train", *TRAIN_FAST, "--out", out, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return out, json.loads(result.stdout)


@pytest.fixture
def checkpoint_copy(trained: tuple[Path, dict], tmp_path: Path) -> Path:
    copy = tmp_path / "ckpt"
    shutil.copytree(trained[0], copy)
    return copy


def edit_metadata(path: Path, change) -> None:
    meta_path = path / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    change(metadata)
    meta_path.write_text(json.dumps(metadata))


# -- success paths --------------------------------------------------------------------------

def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"hil {__version__}\n"


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "Usage" in result.output
    for command in ("train", "evaluate", "sites", "list"):
        assert command in result.output


def test_list_json() -> None:
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    names = json.loads(result.stdout)
    assert set(names) == {"models", "datasets", "backends"}
    assert {"lenet5", "mlp", "cnn-s"} <= set(names["models"])
    assert {"mnist5k", "digits", "synthetic", "mnist"} <= set(names["datasets"])
    assert {"sim", "gpu"} <= set(names["backends"])


def test_list_text() -> None:
    result = invoke("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("models: ") and "lenet5" in lines[0]
    assert lines[1].startswith("datasets: ") and "mnist5k" in lines[1]
    assert lines[2].startswith("backends: ") and "sim" in lines[2]


@pytest.mark.parametrize(
    ("model", "bn", "count"),
    [("lenet5", False, 12), ("lenet5", True, 16), ("mlp", False, 8), ("mlp", True, 11),
     ("cnn-s", False, 8), ("cnn-s", True, 11)],
)
def test_sites_json_counts(model: str, bn: bool, count: int) -> None:
    result = invoke("sites", "--model", model, *(["--bn"] if bn else []), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == model and data["bn"] is bn
    sites = data["sites"]
    assert len(sites) == count
    assert [s["index"] for s in sites] == list(range(count))
    assert all(s["name"] == f"{s['index']}:{s['path']}" for s in sites)
    assert sites[0]["kind"] == "input"
    assert {"index", "name", "path", "kind", "op", "shape", "numel"} <= set(sites[0])


def test_sites_table_cnn_s() -> None:
    result = invoke("sites", "--model", "cnn-s")
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    assert "cnn-s: 8 noise sites" in text
    assert "3:conv2" in text
    assert "0:input" in text


def test_sites_unknown_model() -> None:
    error_line(invoke("sites", "--model", "resnet"), "unknown model 'resnet'", "lenet5")


def test_train_json_summary(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    assert summary["checkpoint"] == str(out)
    assert 0.0 <= summary["clean_accuracy"] <= 1.0
    assert summary["noisy_accuracy"] is None  # clean training
    assert summary["epochs"] == 1
    assert summary["noise"]["sigma_add"] == 0.0
    assert (out / "metadata.json").is_file()
    assert (out / "model.safetensors").is_file()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["metrics"]["test_accuracy"] == summary["clean_accuracy"]


def test_train_text_output_with_noise(tmp_path: Path) -> None:
    out = tmp_path / "noisy"
    result = invoke("train", *TRAIN_FAST, "--sigma-add", "0.1", "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    text = plain(result.stdout)
    assert re.search(r"clean test accuracy: \d+\.\d\d%", text), text
    assert re.search(r"noisy test accuracy: \d+\.\d\d% ± \d+\.\d\d% \(σa=0\.1 sites=all, 3 draws\)", text), text
    assert f"checkpoint: {out}" in text
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["noise"]["sigma_add"] == 0.1
    assert 0.0 <= metadata["metrics"]["noisy_test_accuracy"] <= 1.0


def test_evaluate_json_with_repeats(trained: tuple[Path, dict]) -> None:
    out = trained[0]
    result = invoke("evaluate", "--checkpoint", out, "--sigma-add", "0.1", "--repeats", "3", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["checkpoint"] == str(out)
    assert report["backend"] == "sim"
    assert report["dataset"] == "digits"
    assert report["noise"]["sigma_add"] == 0.1
    accuracy = report["accuracy"]
    assert len(accuracy["accuracies"]) == 3
    assert accuracy["repeats"] == 3
    assert all(0.0 <= a <= 1.0 for a in accuracy["accuracies"])
    assert accuracy["std"] >= 0.0
    assert accuracy["mean"] == pytest.approx(sum(accuracy["accuracies"]) / 3)
    assert accuracy["samples"] > 0


def test_evaluate_text_output(trained: tuple[Path, dict]) -> None:
    result = invoke("evaluate", "--checkpoint", trained[0], "--sigma-mul", "0.2", "--repeats", "2")
    assert result.exit_code == 0, (result.output, result.exception)
    text = plain(result.stdout)
    assert re.search(r"accuracy: \d+\.\d\d% ± \d+\.\d\d% over 2 repeats \(σm=0\.2 sites=all, backend sim, "
                     r"\d+ test samples\)", text), text


def test_evaluate_clean_is_deterministic(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    first = invoke("evaluate", "--checkpoint", out, "--repeats", "2", "--json")
    second = invoke("evaluate", "--checkpoint", out, "--repeats", "2", "--json")
    assert first.exit_code == second.exit_code == 0
    a, b = json.loads(first.stdout)["accuracy"], json.loads(second.stdout)["accuracy"]
    assert a == b
    assert a["std"] == 0.0
    # Clean evaluation of the checkpoint reproduces the accuracy training reported.
    assert a["mean"] == summary["clean_accuracy"]


def test_evaluate_seed_controls_noise(trained: tuple[Path, dict]) -> None:
    out = trained[0]

    def accuracies(seed: int) -> list[float]:
        result = invoke("evaluate", "--checkpoint", out, "--sigma-add", "0.5", "--repeats", "3",
                        "--seed", seed, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["accuracy"]["accuracies"]

    seed0 = accuracies(0)
    assert accuracies(0) == seed0  # same seed, same draws
    assert accuracies(1) != seed0  # another seed, other draws


def test_resume_continues_training(checkpoint_copy: Path) -> None:
    result = invoke("train", "--resume", checkpoint_copy, "--epochs", "2", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 2
    assert summary["checkpoint"] == str(checkpoint_copy)  # --out defaults to the resumed checkpoint
    metadata = json.loads((checkpoint_copy / "metadata.json").read_text())
    assert metadata["training"]["epochs_done"] == 2
    assert [r["epoch"] for r in metadata["training"]["history"]] == [1, 2]
    assert (checkpoint_copy / "epochs" / "epoch-0002" / "metadata.json").is_file()


# -- train: errors --------------------------------------------------------------------------

TRAIN_ERRORS = {
    "unknown-model": (["--model", "resnet", "--dataset", "digits"], ["unknown model 'resnet'", "lenet5", "mlp"]),
    "unknown-dataset": (["--model", "mlp", "--dataset", "cifar"], ["unknown dataset 'cifar'", "mnist5k"]),
    "unknown-backend": ([*TRAIN_FAST, "--backend", "tpu"], ["unknown backend 'tpu'", "sim"]),
    "sim-address": ([*TRAIN_FAST, "--backend", "sim:foo"], ["backend 'sim' takes no address", "sim:seed=3"]),
    "gpu-address": ([*TRAIN_FAST, "--backend", "gpu:tpu"], ["bad gpu device 'tpu'", "gpu:cuda:1"]),
    "backend-option": ([*TRAIN_FAST, "--backend", "sim:speed=3"], ["no option speed", "seed"]),
    "backend-seed": ([*TRAIN_FAST, "--backend", "sim:seed=x"], ["seed must be an integer"]),
    "device-backend": ([*TRAIN_FAST, "--backend", "device:serial:/dev/ttyUSB0"],
                       ["cannot open serial port /dev/ttyUSB0"]),
    "negative-sigma": ([*TRAIN_FAST, "--sigma-add", "-0.1"], ["sigma_add", "≥ 0", "-0.1"]),
    "nan-sigma": ([*TRAIN_FAST, "--sigma-add", "nan"], ["sigma_add", "finite", "nan"]),
    "inf-sigma-mul": ([*TRAIN_FAST, "--sigma-mul", "inf"], ["sigma_mul", "finite"]),
    "bad-order": ([*TRAIN_FAST, "--sigma-add", "0.1", "--order", "sideways"],
                  ["order must be one of", "mul-first", "add-first", "'sideways'"]),
    "bad-gradient": ([*TRAIN_FAST, "--gradient", "reverse"], ["gradient must be one of", "straight-through"]),
    "zero-executions": ([*TRAIN_FAST, "--executions", "0"], ["repeats must be an integer ≥ 1"]),
    "missing-site-name": ([*TRAIN_FAST, "--sigma-add", "0.1", "--sites", "3:conv2"],
                          ["no site named '3:conv2'", "3:fc2"]),
    "site-index-out-of-range": ([*TRAIN_FAST, "--sigma-add", "0.1", "--sites", "1,99"],
                                ["site index 99 out of range", "8 sites"]),
    "empty-sites": ([*TRAIN_FAST, "--sites", ","], ["--sites is empty"]),
    "zero-epochs": (["--dataset", "digits", "--model", "mlp", "--epochs", "0"], ["epochs must be an integer ≥ 1"]),
    "negative-lr": ([*TRAIN_FAST, "--lr", "-1"], ["lr must be a finite number > 0"]),
    "nan-lr": ([*TRAIN_FAST, "--lr", "nan"], ["lr must be a finite number > 0"]),
    "mnist-without-data-dir": (["--model", "mlp", "--dataset", "mnist", "--epochs", "1"],
                               ["dataset 'mnist' needs --data-dir", "train-images-idx3-ubyte"]),
    "mnist-data-dir-missing": (["--model", "mlp", "--dataset", "mnist", "--epochs", "1",
                                "--data-dir", "{tmp}/no-such-folder"],
                               ["{tmp}/no-such-folder does not exist", "does not download"]),
    "mnist-data-dir-empty": (["--model", "mlp", "--dataset", "mnist", "--epochs", "1",
                              "--data-dir", "{tmp}/empty"],
                             ["{tmp}/empty is missing", "t10k-labels-idx1-ubyte", "does not download"]),
    "missing-config": ([*TRAIN_FAST, "--config", "{tmp}/run.toml"],
                       ["config file {tmp}/run.toml does not exist"]),
}


@pytest.mark.parametrize("case", TRAIN_ERRORS, ids=list(TRAIN_ERRORS))
def test_train_errors(case: str, tmp_path: Path) -> None:
    args, fragments = TRAIN_ERRORS[case]
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = invoke("train", *[a.format(tmp=tmp_path) for a in args], "--out", out)
    error_line(result, *[f.format(tmp=tmp_path) for f in fragments])
    assert not out.exists()
    assert snapshot(tmp_path) == before


def test_train_requires_out(tmp_path: Path) -> None:
    error_line(invoke("train", *TRAIN_FAST), "--out is required")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so 'gpu' works")
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_gpu_backend_without_cuda(command: str, trained: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = snapshot(trained[0])
    if command == "train":
        result = invoke("train", *TRAIN_FAST, "--backend", "gpu", "--out", out)
    else:
        result = invoke("evaluate", "--checkpoint", trained[0], "--backend", "gpu")
    error_line(result, "backend 'gpu' needs CUDA", "--backend sim")
    assert not out.exists()
    assert snapshot(trained[0]) == before


def test_train_refuses_existing_checkpoint(checkpoint_copy: Path) -> None:
    before = snapshot(checkpoint_copy)
    result = invoke("train", *TRAIN_FAST, "--out", checkpoint_copy)
    error_line(result, f"{checkpoint_copy} already holds a checkpoint", f"--resume {checkpoint_copy}",
               "--overwrite")
    assert snapshot(checkpoint_copy) == before


def test_train_refuses_nonempty_folder(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    error_line(invoke("train", *TRAIN_FAST, "--out", out), "is not empty", "--overwrite")
    assert snapshot(tmp_path) == before


def test_train_refuses_out_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    before = snapshot(tmp_path)
    error_line(invoke("train", *TRAIN_FAST, "--out", out), "is a file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [(["--model", "mlp"], "model"), (["--dataset", "digits"], "dataset"), (["--seed", "3"], "seed"),
     (["--lr", "0.01"], "lr"), (["--no-bn"], "bn"),
     (["--sigma-add", "0.1"], "noise.sigma_add"), (["--sites", "matmul"], "noise.sites"),
     (["--config", "run.toml"], "--config")],
)
def test_resume_rejects_other_flags(extra: list[str], named: str, checkpoint_copy: Path) -> None:
    before = snapshot(checkpoint_copy)
    result = invoke("train", "--resume", checkpoint_copy, "--epochs", "2", *extra)
    error_line(result, "--resume takes the run's settings from the checkpoint", "only --epochs",
               f"(got {named})")
    assert snapshot(checkpoint_copy) == before


def test_resume_already_finished(checkpoint_copy: Path) -> None:
    before = snapshot(checkpoint_copy)
    error_line(invoke("train", "--resume", checkpoint_copy, "--epochs", "1"),
               "already finished 1 epochs", "--epochs greater than 1")
    assert snapshot(checkpoint_copy) == before


def test_resume_missing_checkpoint(tmp_path: Path) -> None:
    error_line(invoke("train", "--resume", tmp_path / "gone", "--epochs", "2"),
               "no checkpoint at", "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_resume_into_other_existing_checkpoint_is_refused(trained: tuple[Path, dict], tmp_path: Path) -> None:
    source, other = tmp_path / "source", tmp_path / "other"
    shutil.copytree(trained[0], source)
    shutil.copytree(trained[0], other)
    edit_metadata(other, lambda m: m.setdefault("note", "an unrelated run"))
    before = snapshot(other)
    result = invoke("train", "--resume", source, "--epochs", "2", "--out", other)
    error_line(result, "already holds a checkpoint", "--overwrite")
    assert snapshot(other) == before


def test_resume_from_epoch_checkpoint_keeps_it(checkpoint_copy: Path) -> None:
    epoch = checkpoint_copy / "epochs" / "epoch-0001"
    before = snapshot(epoch)
    result = invoke("train", "--resume", epoch, "--epochs", "2", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert snapshot(epoch) == before
    assert not (epoch / "epochs").exists()


# -- evaluate: errors -----------------------------------------------------------------------

EVALUATE_ERRORS = {
    "unknown-backend": (["--backend", "tpu"], ["unknown backend 'tpu'", "sim"]),
    "sim-address": (["--backend", "sim:foo"], ["backend 'sim' takes no address"]),
    "gpu-address": (["--backend", "gpu:tpu"], ["bad gpu device 'tpu'"]),
    "options-not-last": (["--backend", "gpu:seed=1:cuda"], ["options (KEY=VALUE) must come last"]),
    "device-backend": (["--backend", "device:usb:1.2.3.4"], ["unknown device transport or driver 'usb'"]),
    "device-without-address": (["--backend", "device"], ["needs an address"]),
    "negative-sigma": (["--sigma-add", "-1"], ["sigma_add", "≥ 0"]),
    "nan-sigma": (["--sigma-add", "nan"], ["sigma_add", "finite", "nan"]),
    "negative-sigma-mul": (["--sigma-mul", "-0.5"], ["sigma_mul", "≥ 0"]),
    "bad-order": (["--order", "both"], ["order must be one of", "'both'"]),
    "missing-site-name": (["--sigma-add", "0.1", "--sites", "conv2"], ["no site named 'conv2'", "1:fc1"]),
    "site-index-out-of-range": (["--sigma-add", "0.1", "--sites", "8"], ["site index 8 out of range"]),
    "zero-executions": (["--executions", "0"], ["repeats must be an integer ≥ 1"]),
}


@pytest.mark.parametrize("case", EVALUATE_ERRORS, ids=list(EVALUATE_ERRORS))
def test_evaluate_errors(case: str, trained: tuple[Path, dict]) -> None:
    args, fragments = EVALUATE_ERRORS[case]
    before = snapshot(trained[0])
    error_line(invoke("evaluate", "--checkpoint", trained[0], *args), *fragments)
    assert snapshot(trained[0]) == before


def test_evaluate_missing_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    error_line(invoke("evaluate", "--checkpoint", missing),
               f"no checkpoint at {missing}", "does not exist", f"hil train --out {missing}")
    assert not missing.exists()


def test_evaluate_folder_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    before = snapshot(tmp_path)
    error_line(invoke("evaluate", "--checkpoint", tmp_path), "metadata.json is missing")
    assert snapshot(tmp_path) == before


def _newer_format(m: dict) -> None:
    m["format_version"] = 99


def _hidden_32(m: dict) -> None:
    m["model"]["kwargs"]["hidden"] = 32


def _not_a_checkpoint(m: dict) -> None:
    m.pop("format")


def _other_model(m: dict) -> None:
    m["model"]["name"] = "resnet"


BROKEN_CHECKPOINTS = {
    "newer-format": (_newer_format, ["format version 99", "newer", "upgrade hil"]),
    "wrong-shape": (_hidden_32, ["do not fit the model", "fc1", "(64,", "(32,"]),
    "not-a-checkpoint": (_not_a_checkpoint, ["is not a hil checkpoint"]),
    "unknown-model": (_other_model, ["unknown model 'resnet'"]),
}


@pytest.mark.parametrize("case", BROKEN_CHECKPOINTS, ids=list(BROKEN_CHECKPOINTS))
def test_evaluate_broken_checkpoint(case: str, checkpoint_copy: Path) -> None:
    change, fragments = BROKEN_CHECKPOINTS[case]
    edit_metadata(checkpoint_copy, change)
    before = snapshot(checkpoint_copy)
    error_line(invoke("evaluate", "--checkpoint", checkpoint_copy), *fragments)
    assert snapshot(checkpoint_copy) == before


def test_evaluate_corrupt_weights(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "model.safetensors").write_bytes(b"\x00" * 7)
    before = snapshot(checkpoint_copy)
    error_line(invoke("evaluate", "--checkpoint", checkpoint_copy), "cannot read weights", "model.safetensors")
    assert snapshot(checkpoint_copy) == before


def test_evaluate_checkpoint_with_unknown_model_kwarg(checkpoint_copy: Path) -> None:
    edit_metadata(checkpoint_copy, lambda m: m["model"]["kwargs"].update(width_multiplier=2))
    error_line(invoke("evaluate", "--checkpoint", checkpoint_copy), "width_multiplier")


# -- --debug --------------------------------------------------------------------------------

def test_debug_lets_the_exception_propagate(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = invoke("--debug", "evaluate", "--checkpoint", missing)
    assert result.exit_code == 1
    assert isinstance(result.exception, CheckpointError)
    assert "error:" not in result.stderr
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        invoke("--debug", "evaluate", "--checkpoint", missing, catch_exceptions=False)


def test_hil_debug_environment_variable(tmp_path: Path) -> None:
    result = invoke("train", "--model", "resnet", "--out", tmp_path / "out", env={"HIL_DEBUG": "1"})
    assert isinstance(result.exception, ConfigError)
    assert result.exit_code == 1


# -- the real process -----------------------------------------------------------------------

def _hil(*args: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "HIL_DEBUG")}
    env["NO_COLOR"] = "1"
    return subprocess.Popen([sys.executable, "-m", "hil", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def _reap(*processes: subprocess.Popen[str]) -> None:
    """Stop the processes this test started that are still running (after a failed assertion)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_python_m_hil_help_and_version() -> None:
    help_process, version_process = _hil("--help"), _hil("--version")
    try:
        code, stdout, stderr = _finish(help_process)
        assert code == 0, stderr
        assert "Usage: hil" in stdout
        for command in ("train", "evaluate", "sites", "list", "--debug", "--version"):
            assert command in stdout
        code, stdout, stderr = _finish(version_process)
        assert (code, stdout, stderr) == (0, f"hil {__version__}\n", "")
    finally:
        _reap(help_process, version_process)


def test_python_m_hil_error_exit_code_and_debug_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    # Both import torch (seconds each): run them side by side.
    plain_run = _hil("evaluate", "--checkpoint", missing)
    debug_run = _hil("--debug", "evaluate", "--checkpoint", missing)
    try:
        code, stdout, stderr = _finish(plain_run)
        assert code == 1
        assert stdout == ""
        assert "Traceback" not in stderr
        assert plain(stderr).strip().splitlines() == [
            f"error: no checkpoint at {missing}: the directory does not exist; train one with: "
            f"hil train --out {missing}"
        ]
        code, stdout, stderr = _finish(debug_run)
        assert code == 1
        assert "Traceback (most recent call last)" in stderr
        assert "hil.errors.CheckpointError: no checkpoint at" in stderr
        assert not missing.exists()
    finally:
        _reap(plain_run, debug_run)
