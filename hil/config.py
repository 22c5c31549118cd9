"""Training configuration: a frozen dataclass built from a TOML file and CLI flags (torch-free).

TOML layout (every key optional; CLI flags override)::

    model = "lenet5"
    bn = false
    dataset = "mnist5k"
    preprocess = "paper"   # or "standard"
    epochs = 30
    seed = 0
    backend = "sim"

    [noise]
    sigma_add = 0.1
    sites = "all"          # or "matmul", or a list of site names
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hil.data import DEFAULT_PREPROCESS, check_preprocess
from hil.errors import ConfigError
from hil.noise import NoiseSpec
from hil.validation import check_int, check_keys, check_number, check_size


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        model: Registered model name.
        bn: BatchNorm variant of the model.
        dataset: Registered dataset name.
        data_dir: Folder with dataset files (for datasets that are not embedded).
        preprocess: ``paper`` (images as [0, 1] pixels, speech as MFCCs, as Walking Noise) or ``standard``
            (mean 0 / std 1); recorded in the checkpoint, so evaluation prepares the data the same way.
        epochs: Training epochs (cosine schedule over them).
        batch_size: Mini-batch size.
        lr: Adam learning rate at the start of the cosine schedule.
        seed: Seeds weight init, data split and shuffling, and noise draws.
        clamp_weights: Clamp Linear/Conv weights to [-1, 1] after every step (analog
            conductances are bounded).
        backend: Backend spec used in training (``sim``, ``gpu``...).
        noise: Noise applied during training.
        calibration: A calibration profile (``hil calibrate --out``) whose σa, σm become the noise at
            every Linear/Conv site, converted to the network's units when training starts; it
            replaces ``noise``.
        quant: Quantisation-aware training with this bit width (2, 4, 8, 16), None = float.
        act_scaling: Activation scaling of a quantised model: ``dynamic`` or ``const:<s>``.
        init: A checkpoint whose weights the run starts from (fine-tuning), None = fresh weights.
    """

    model: str = "lenet5"
    bn: bool = False
    dataset: str = "mnist5k"
    data_dir: str | None = None
    preprocess: str = DEFAULT_PREPROCESS
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    clamp_weights: bool = False
    backend: str = "sim"
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    calibration: str | None = None
    quant: int | None = None
    act_scaling: str = "dynamic"
    init: str | None = None

    def __post_init__(self) -> None:
        from hil.backends.spec import parse_backend_spec
        from hil.data import DATASETS
        from hil.models import MODELS

        for name in ("model", "dataset", "backend"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a name (string), got {getattr(self, name)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"data_dir must be a path (string), got {self.data_dir!r}")
        for registry, value in ((MODELS, self.model), (DATASETS, self.dataset)):
            if value not in registry:
                raise ConfigError(
                    f"unknown {registry.kind} {value!r}; choose one of: {', '.join(registry.names())}"
                )
        check_preprocess(self.preprocess)
        for name, low in (("epochs", 1), ("batch_size", 1), ("seed", 0)):
            object.__setattr__(self, name, check_int(getattr(self, name), name, low=low))
        object.__setattr__(self, "lr", check_number(self.lr, "lr", positive=True))
        for name in ("bn", "clamp_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.noise, NoiseSpec):
            raise ConfigError(f"noise must be a NoiseSpec, got {self.noise!r}")
        if self.init is not None and not isinstance(self.init, str):
            raise ConfigError(f"init must be a checkpoint path (string), got {self.init!r}")
        if self.calibration is not None:
            if not isinstance(self.calibration, str):
                raise ConfigError(f"calibration must be a path (string), got {self.calibration!r}")
            if self.noise != NoiseSpec():
                raise ConfigError("--calibration sets the noise from the profile; drop --sigma-add/--sigma-mul "
                                  "and the other noise settings ([noise] table)")
        parse_backend_spec(self.backend)
        if self.quant is not None:
            from hil.models.quantize import QuantConfig

            QuantConfig(self.quant, self.act_scaling)
        elif self.act_scaling != "dynamic":
            raise ConfigError("--act-scaling applies to quantised training; add --quant 4 or --quant 8")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in checkpoint metadata)."""
        data = asdict(self)
        data["noise"] = self.noise.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (TOML or metadata); unknown keys are errors."""
        check_keys(data, (f.name for f in fields(cls)), "config")
        values = dict(data)
        if "noise" in values and not isinstance(values["noise"], NoiseSpec):
            if not isinstance(values["noise"], Mapping):
                raise ConfigError("noise must be a table ([noise] in TOML)")
            values["noise"] = NoiseSpec.from_dict(values["noise"])
        return cls(**values)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file.

    Raises:
        ConfigError: Missing file or invalid TOML (with the parser's position).
    """
    file = Path(path)
    check_size(file, "config file")
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist; check the --config path") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {file} is not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {file}: {error.strerror}") from None


def merge_config(file_values: Mapping[str, Any], overrides: Mapping[str, Any]) -> TrainConfig:
    """Combine TOML values with CLI overrides (None = not given); noise keys merge per key."""
    values = dict(file_values)
    raw_noise = values.pop("noise", None) or {}
    if not isinstance(raw_noise, Mapping):
        raise ConfigError(f"noise must be a table ([noise] in TOML), got {raw_noise!r}")
    noise = dict(raw_noise)
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "noise":
            noise.update({k: v for k, v in value.items() if v is not None})
        else:
            values[key] = value
    return TrainConfig.from_dict({**values, "noise": noise})
