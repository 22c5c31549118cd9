"""What a checkpoint says about its run, typed: `RunMetadata`, read from and written to ``metadata.json``.

A checkpoint may come from anyone, so `RunMetadata.from_dict` checks every field it reads and names the one
that is wrong; it never trusts a path in the file to choose where hil writes (``dataset.data_dir`` is only a
default for where to *read* the data, and ``--data-dir`` wins). Fields this version does not know are kept in
`RunMetadata.extra` and written back unchanged. Torch-free, so the CLI can read a run's settings cheaply.

Versions: ``format_version`` 1 is the only one so far; files without the ``training``, ``metrics``, ``backend``
or ``calibration`` fields (hand-made or older checkpoints) read with empty defaults; without
``dataset.preprocess`` (written before preprocessing was a setting) they read as ``standard``, what they used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hil._version import __version__
from hil.data import DEFAULT_PREPROCESS, LEGACY_PREPROCESS, check_preprocess
from hil.errors import CheckpointError, ConfigError
from hil.validation import check_int, check_list, check_number, check_table, check_text

FORMAT = "hil-checkpoint"
FORMAT_VERSION = 1

_KNOWN = ("format", "format_version", "hil_version", "model", "sites", "noise", "calibration", "backend",
          "dataset", "seed", "training", "metrics")


def check_envelope(data: object, source: str) -> None:
    """Check what every hil checkpoint has: its format, a version this hil reads, and a model name.

    Raises:
        CheckpointError: Not a hil checkpoint, a bad or newer ``format_version``, or no ``model.name``.
    """
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a hil checkpoint (missing format: {FORMAT!r})")
    try:
        version = check_int(data.get("format_version"), "format_version", low=1)
    except ConfigError:
        raise CheckpointError(f"{source} has an invalid format_version {data.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source} has format version {version}, newer than this hil ({__version__}) reads "
                              f"(≤ {FORMAT_VERSION}); upgrade hil to load it")
    model = data.get("model")
    if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
        raise CheckpointError(f"{source} does not name its model (metadata.model.name)")


@dataclass(frozen=True)
class ModelInfo:
    """Which network: a registered model name, its constructor keywords and its quantisation (or None)."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    quant: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``metadata.model``)."""
        data: dict[str, Any] = {"name": self.name, "kwargs": dict(self.kwargs)}
        if self.quant is not None:
            data["quant"] = dict(self.quant)
        return data


@dataclass(frozen=True)
class DatasetInfo:
    """Which data and split: the dataset name, where it was read from, the split seed, its shape and how its
    inputs were prepared (``preprocess``: ``paper`` or ``standard``, `hil.data.PREPROCESSING`; a file without
    the field was written before it was a setting and read as ``standard``)."""

    name: str = "mnist5k"
    data_dir: str | None = None
    seed: int = 0
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    preprocess: str = DEFAULT_PREPROCESS

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``metadata.dataset``)."""
        return {"name": self.name, "data_dir": self.data_dir, "seed": self.seed,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "num_classes": self.num_classes, "preprocess": self.preprocess}


@dataclass(frozen=True)
class TrainingState:
    """How far training got: its config (as `hil.config.TrainConfig.to_dict`), epochs done, per-epoch records."""

    config: Mapping[str, Any] = field(default_factory=dict)
    epochs_done: int = 0
    history: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``metadata.training``)."""
        return {"config": dict(self.config), "epochs_done": self.epochs_done,
                "history": [dict(record) for record in self.history]}


@dataclass(frozen=True)
class RunMetadata:
    """A checkpoint's ``metadata.json``, typed.

    Attributes:
        model: The network (`ModelInfo`).
        dataset: The data and split it was trained on (`DatasetInfo`).
        seed: The run's seed.
        sites: The traced sites (as `hil.sites.Site.to_dict`).
        noise: The training noise (as `hil.noise.NoiseSpec.to_dict`).
        backend: The backend spec it trained on.
        calibration: What a calibration profile set, or None.
        training: Training progress (`TrainingState`).
        metrics: Scalar results, e.g. ``test_accuracy``.
        format_version: Version of the checkpoint format.
        hil_version: The hil that wrote it ("" when unknown).
        extra: Fields this version does not know, kept as they are.
    """

    model: ModelInfo
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    seed: int = 0
    sites: tuple[Mapping[str, Any], ...] = ()
    noise: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "sim"
    calibration: Mapping[str, Any] | None = None
    training: TrainingState = field(default_factory=TrainingState)
    metrics: Mapping[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    hil_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        """The clean test accuracy recorded at the end of training.

        Raises:
            CheckpointError: The checkpoint has no ``metrics.test_accuracy``.
        """
        if "test_accuracy" not in self.metrics:
            raise CheckpointError("the checkpoint records no metrics.test_accuracy; was its training finished?")
        return self.metrics["test_accuracy"]

    def to_dict(self) -> dict[str, Any]:
        """Plain form (the content of ``metadata.json``, format fields included)."""
        data: dict[str, Any] = {"format": FORMAT, "format_version": self.format_version,
                                "hil_version": self.hil_version, "model": self.model.to_dict(),
                                "sites": [dict(site) for site in self.sites], "noise": dict(self.noise)}
        if self.calibration is not None:
            data["calibration"] = dict(self.calibration)
        data.update({"backend": self.backend, "dataset": self.dataset.to_dict(), "seed": self.seed,
                     "training": self.training.to_dict(), "metrics": dict(self.metrics)})
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "metadata") -> RunMetadata:
        """Check and type a parsed ``metadata.json``.

        Args:
            data: The parsed JSON object.
            source: Where it came from, for messages (e.g. the file's path).

        Raises:
            CheckpointError: A field is missing or of the wrong kind (one line naming it), or the format is newer.
        """
        check_envelope(data, source)
        try:
            return cls._parse(data)
        except ConfigError as error:
            raise CheckpointError(f"{source}: {error}") from None

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> RunMetadata:
        version = data["format_version"]
        model = check_table(data.get("model"), "model")
        quant = model.get("quant")
        model_info = ModelInfo(model["name"], dict(check_table(model.get("kwargs") or {}, "model.kwargs")),
                               None if quant is None else dict(check_table(quant, "model.quant")))
        dataset = check_table(data.get("dataset") or {}, "dataset")
        shape = dataset.get("input_shape")
        if shape is not None:
            check_list(shape, "dataset.input_shape", kind="a list of integers")
        data_dir = dataset.get("data_dir")
        classes = dataset.get("num_classes")
        dataset_info = DatasetInfo(
            check_text(dataset.get("name", "mnist5k"), "dataset.name"),
            None if data_dir is None else check_text(data_dir, "dataset.data_dir"),
            check_int(dataset.get("seed", 0), "dataset.seed"),
            None if shape is None else tuple(check_int(n, "dataset.input_shape", low=1) for n in shape),
            None if classes is None else check_int(classes, "dataset.num_classes", low=2),
            check_preprocess(dataset.get("preprocess", LEGACY_PREPROCESS), "dataset.preprocess"))
        training = check_table(data.get("training") or {}, "training")
        history = check_list(training.get("history", []), "training.history")
        config = dict(check_table(training.get("config") or {}, "training.config"))
        if config and "preprocess" not in config:
            # Trained before preprocessing was a setting: a resumed run keeps the standardisation it had.
            config["preprocess"] = dataset_info.preprocess
        training_state = TrainingState(config,
                                       check_int(training.get("epochs_done", 0), "training.epochs_done", low=0),
                                       tuple(dict(check_table(r, "training.history[]")) for r in history))
        metrics = {key: check_number(value, f"metrics.{key}", finite=False)
                   for key, value in check_table(data.get("metrics") or {}, "metrics").items()}
        sites = check_list(data.get("sites", []), "sites")
        backend = check_text(data.get("backend", "sim"), "backend", kind="a spec string")
        calibration = data.get("calibration")
        hil_version = data.get("hil_version", "")
        return cls(model=model_info, dataset=dataset_info, seed=check_int(data.get("seed", 0), "seed"),
                   sites=tuple(dict(check_table(s, "sites[]")) for s in sites),
                   noise=dict(check_table(data.get("noise") or {}, "noise")), backend=backend,
                   calibration=None if calibration is None else dict(check_table(calibration, "calibration")),
                   training=training_state, metrics=metrics, format_version=version,
                   hil_version=hil_version if isinstance(hil_version, str) else str(hil_version),
                   extra={key: value for key, value in data.items() if key not in _KNOWN})
