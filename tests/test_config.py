"""Training configuration: TOML files, CLI overrides, validation, and ``hil train --config``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.config import TrainConfig, merge_config, read_toml
from hil.errors import ConfigError
from hil.noise import NoiseSpec, SiteOverride

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
TRAIN_KEYS = ("act_scaling, backend, batch_size, bn, calibration, clamp_weights, data_dir, dataset, epochs, init, lr, "
              "model, noise, preprocess, quant, seed")
NOISE_KEYS = "gradient, order, overrides, repeats, seed, sigma_add, sigma_mul, sites"
NO_FLAGS = {"model": None, "bn": None, "dataset": None, "data_dir": None, "epochs": None, "batch_size": None,
            "lr": None, "seed": None, "clamp_weights": None, "backend": None,
            "noise": {"sigma_add": None, "sigma_mul": None, "order": None, "sites": None, "gradient": None,
                      "repeats": None}}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def flags(noise: dict | None = None, **values: object) -> dict:
    """CLI-shaped overrides (None = flag not given), as `hil train` builds them."""
    return {**NO_FLAGS, **values, "noise": {**NO_FLAGS["noise"], **(noise or {})}}


def cli_error(result) -> str:
    """The one ``error:`` line of a handled CLI error (exit 1, no traceback)."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in ANSI.sub("", result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- TOML -----------------------------------------------------------------------------------

def test_read_toml_with_noise_table(tmp_path: Path) -> None:
    path = write(tmp_path / "run.toml", """
model = "mlp"
bn = true
dataset = "digits"
epochs = 3
lr = 0.002
backend = "sim:seed=4"

[noise]
sigma_add = 0.1
sigma_mul = 0.05
order = "add-first"
sites = ["1:fc1", 3, "fc3"]
repeats = 2

[[noise.overrides]]
site = "1:fc1"
sigma_add = 0.5
""")
    values = read_toml(path)
    assert values["noise"]["sites"] == ["1:fc1", 3, "fc3"]
    config = merge_config(values, flags())
    assert config == TrainConfig(
        model="mlp", bn=True, dataset="digits", epochs=3, lr=0.002, backend="sim:seed=4",
        noise=NoiseSpec(sigma_add=0.1, sigma_mul=0.05, order="add-first", sites=("1:fc1", 3, "fc3"), repeats=2,
                        overrides=(SiteOverride("1:fc1", sigma_add=0.5),)),
    )
    # Unspecified keys keep their defaults.
    assert (config.batch_size, config.seed, config.clamp_weights, config.data_dir) == (128, 0, False, None)


def test_empty_toml_gives_defaults(tmp_path: Path) -> None:
    assert merge_config(read_toml(write(tmp_path / "empty.toml", "")), flags()) == TrainConfig()


def test_cli_flags_override_toml(tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", """
model = "lenet5"
dataset = "mnist5k"
epochs = 30
seed = 1

[noise]
sigma_add = 0.1
sites = "matmul"
"""))
    config = merge_config(values, flags(model="mlp", epochs=2, noise={"sigma_add": 0.3, "order": "add-first"}))
    assert config.model == "mlp" and config.epochs == 2
    assert config.dataset == "mnist5k" and config.seed == 1  # not overridden
    # Noise keys merge one by one: the flag wins for sigma_add, the file keeps sites.
    assert config.noise == NoiseSpec(sigma_add=0.3, sites="matmul", order="add-first")
    assert values["noise"] == {"sigma_add": 0.1, "sites": "matmul"}  # the file's values are not mutated


def test_flags_alone_without_toml() -> None:
    config = merge_config({}, flags(model="mlp", dataset="digits", noise={"sites": ("3:fc2",), "sigma_mul": 0.2}))
    assert config == TrainConfig(model="mlp", dataset="digits", noise=NoiseSpec(sigma_mul=0.2, sites=("3:fc2",)))


def test_flag_override_is_validated(tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", 'epochs = 5\n'))
    with pytest.raises(ConfigError, match="epochs must be an integer ≥ 1, got 0"):
        merge_config(values, flags(epochs=0))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", 'modle = "mlp"\nepochs = 2\n'))
    with pytest.raises(ConfigError) as info:
        merge_config(values, flags())
    assert str(info.value) == f"unknown config key(s) modle; valid keys: {TRAIN_KEYS}"


def test_unknown_noise_key(tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", '[noise]\nsigma = 0.1\nsigma_add = 0.2\n'))
    with pytest.raises(ConfigError) as info:
        merge_config(values, flags())
    assert str(info.value) == f"unknown noise key(s) sigma; valid keys: {NOISE_KEYS}"


def test_unknown_override_key(tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", '[[noise.overrides]]\nsite = 1\nsigma = 0.1\n'))
    with pytest.raises(ConfigError, match="unknown override key.*sigma; valid keys: repeats, sigma_add, sigma_mul"):
        merge_config(values, flags())


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", 'model = "mlp\nepochs = 3\n')
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    message = str(info.value)
    assert message.startswith(f"config file {path} is not valid TOML: ")
    assert "line 1" in message  # the parser's position


def test_missing_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"config file {tmp_path / 'nope.toml'} does not exist")):
        read_toml(tmp_path / "nope.toml")


def test_toml_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_toml(tmp_path)


@pytest.mark.parametrize("value", ["0.1", '"high"', "[0.1]"], ids=["number", "string", "list"])
def test_noise_that_is_not_a_table(value: str, tmp_path: Path) -> None:
    values = read_toml(write(tmp_path / "run.toml", f"noise = {value}\n"))
    with pytest.raises(ConfigError, match=r"noise must be a table \(\[noise\] in TOML\)"):
        merge_config(values, flags())


# -- TrainConfig validation -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "message"),
    [({"epochs": 0}, "epochs must be an integer ≥ 1, got 0"),
     ({"epochs": -3}, "epochs must be an integer ≥ 1, got -3"),
     ({"epochs": 2.0}, "epochs must be an integer ≥ 1, got 2.0"),
     ({"epochs": True}, "epochs must be an integer ≥ 1, got True"),
     ({"batch_size": 0}, "batch_size must be an integer ≥ 1, got 0"),
     ({"seed": -1}, "seed must be an integer ≥ 0, got -1"),
     ({"lr": -1}, "lr must be a finite number > 0, got -1"),
     ({"lr": 0}, "lr must be a finite number > 0, got 0"),
     ({"lr": math.nan}, "lr must be a finite number > 0, got nan"),
     ({"lr": math.inf}, "lr must be a finite number > 0, got inf"),
     ({"lr": "0.1"}, "lr must be a finite number > 0, got '0.1'"),
     ({"lr": True}, "lr must be a finite number > 0, got True"),
     ({"bn": "yes"}, "bn must be true or false, got 'yes'"),
     ({"clamp_weights": 1}, "clamp_weights must be true or false, got 1"),
     ({"model": "resnet"}, "unknown model 'resnet'; choose one of: cnn-s, lenet5, mlp"),
     ({"dataset": "cifar"}, "unknown dataset 'cifar'; choose one of: cifar10, digits, fashionmnist, gsc, mnist, "
                            "mnist5k, svhn, synthetic"),
     ({"backend": "sim:foo"}, "backend 'sim' takes no address"),
     ({"backend": "gpu:tpu"}, "bad gpu device 'tpu'"),
     ({"backend": ""}, "bad backend spec ''"),
     ({"backend": "Sim"}, "bad backend spec 'Sim'"),
     ({"backend": "sim:seed=-1"}, "seed must be ≥ 0"),
     ({"backend": "sim:seed=1:x"}, "options (KEY=VALUE) must come last"),
     ({"noise": {"sigma_add": -0.1}}, "sigma_add must be a finite number ≥ 0, got -0.1"),
     ({"noise": {"order": "random"}}, "order must be one of mul-first, add-first, got 'random'"),
     ({"noise": {"sites": []}}, "sites is an empty list"),
     ({"noise": 0.1}, "noise must be a table ([noise] in TOML)")],
    ids=lambda v: json.dumps(v, default=str) if isinstance(v, dict) else None,
)
def test_train_config_validation(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert message in str(info.value)


def test_train_config_rejects_plain_dict_noise() -> None:
    with pytest.raises(ConfigError, match="noise must be a NoiseSpec"):
        TrainConfig(noise={"sigma_add": 0.1})  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [{"backend": 3}, {"model": ["mlp"]}, {"dataset": ["digits"]}],
                         ids=["backend-int", "model-list", "dataset-list"])
def test_train_config_rejects_non_string_names(values: dict) -> None:
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(values)


def test_train_config_round_trip() -> None:
    config = TrainConfig(model="cnn-s", bn=True, dataset="synthetic", epochs=4, batch_size=32, lr=0.01, seed=9,
                         clamp_weights=True, backend="sim:seed=2",
                         noise=NoiseSpec(sigma_mul=0.1, sites=("3:conv2", 5), gradient="straight-through",
                                         overrides=(SiteOverride(0, sigma_add=0.2),)))
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == config


def test_defaults() -> None:
    config = TrainConfig()
    assert (config.model, config.dataset, config.epochs, config.batch_size, config.lr, config.backend) == (
        "lenet5", "mnist5k", 30, 128, 1e-3, "sim")
    assert config.noise.is_clean


# -- hil train --config ---------------------------------------------------------------------

def test_train_with_toml_end_to_end(tmp_path: Path) -> None:
    config_file = write(tmp_path / "run.toml", """
model = "mlp"
dataset = "digits"
epochs = 5
batch_size = 512
lr = 0.002
seed = 3
clamp_weights = true
backend = "sim:seed=2"

[noise]
sigma_mul = 0.05
sites = "matmul"
""")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["train", "--config", str(config_file), "--epochs", "1",
                                      "--sigma-add", "0.02", "--out", str(out), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1
    assert summary["noisy_accuracy"] is not None

    expected = TrainConfig(model="mlp", dataset="digits", epochs=1, batch_size=512, lr=0.002, seed=3,
                           clamp_weights=True, backend="sim:seed=2",
                           noise=NoiseSpec(sigma_add=0.02, sigma_mul=0.05, sites="matmul"))
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["training"]["config"] == expected.to_dict()
    assert metadata["noise"] == expected.noise.to_dict()
    assert metadata["backend"] == "sim:seed=2"
    assert metadata["model"]["name"] == "mlp"
    assert metadata["dataset"]["name"] == "digits" and metadata["dataset"]["seed"] == 3
    assert metadata["seed"] == 3
    assert summary["noise"] == expected.noise.to_dict()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [('modle = "mlp"\n', ["unknown config key(s) modle", f"valid keys: {TRAIN_KEYS}"]),
     ('[noise]\nsigma = 0.1\n', ["unknown noise key(s) sigma", f"valid keys: {NOISE_KEYS}"]),
     ('model = "mlp\n', ["{path} is not valid TOML"]),
     ('model = "mlp"\ndataset = "digits"\nepochs = 0\n', ["epochs must be an integer ≥ 1, got 0"]),
     ('model = "mlp"\ndataset = "digits"\n[noise]\nsigma_add = -1.0\n', ["sigma_add must be a finite number ≥ 0"])],
    ids=["unknown-key", "unknown-noise-key", "invalid-toml", "bad-epochs", "bad-sigma"],
)
def test_train_config_errors_on_the_cli(text: str, fragments: list[str], tmp_path: Path) -> None:
    path = write(tmp_path / "run.toml", text)
    out = tmp_path / "out"
    line = cli_error(CliRunner().invoke(app, ["train", "--config", str(path), "--out", str(out)]))
    for fragment in fragments:
        assert fragment.format(path=path) in line
    assert not out.exists()


def test_cli_flag_fixes_a_bad_toml_value(tmp_path: Path) -> None:
    """Flags are merged before validation, so a flag can replace an invalid file value."""
    path = write(tmp_path / "run.toml", 'model = "mlp"\ndataset = "digits"\nepochs = 0\nbatch_size = 512\n')
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--epochs", "1", "--out", str(tmp_path / "o"),
                                      "--no-epoch-checkpoints", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["epochs"] == 1
    assert not (tmp_path / "o" / "epochs").exists()


def test_cli_missing_config_file(tmp_path: Path) -> None:
    line = cli_error(CliRunner().invoke(app, ["train", "--config", str(tmp_path / "run.toml"),
                                              "--out", str(tmp_path / "out")]))
    assert f"config file {tmp_path / 'run.toml'} does not exist; check the --config path" in line
    assert list(tmp_path.iterdir()) == []


def test_cli_noise_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "run.toml", 'model = "mlp"\ndataset = "digits"\nnoise = 0.1\n')
    line = cli_error(CliRunner().invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "out")]))
    assert "[noise]" in line
