"""Experiment tracking: a training run or a study logged to MLflow (``--track mlflow[:URI]``).

Optional: the ``track`` extra (``mlflow-skinny`` with SQLAlchemy for a local SQLite store). MLflow is
imported only when ``--track`` is given. ``mlflow`` alone logs to ``./mlruns/mlflow.db`` with artifacts in
``./mlruns/artifacts`` (view with ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``);
``mlflow:URI`` logs to that tracking URI (``sqlite:///PATH``, ``http://HOST:5000``, …). A tracker only
mirrors what hil stores itself (checkpoint, results store): when logging fails, the run goes on and one
warning says so, since the numbers are safe on disk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hil.errors import ConfigError

TRACKERS = ("mlflow",)
DEFAULT_FOLDER = "mlruns"
_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


@dataclass(frozen=True)
class TrackSpec:
    """Where to log: the tracker's name and its URI (None: the local default)."""

    tracker: str
    uri: str | None = None

    @classmethod
    def parse(cls, text: str) -> TrackSpec:
        """From ``mlflow`` or ``mlflow:URI``.

        Raises:
            ConfigError: Unknown tracker or an empty URI.
        """
        name, colon, uri = text.strip().partition(":")
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r} in --track {text!r}; use mlflow or mlflow:URI "
                              f"(e.g. mlflow:sqlite:///runs.db or mlflow:http://HOST:5000)")
        if colon and not uri:
            raise ConfigError(f"--track {text!r} has an empty URI; use mlflow or mlflow:URI")
        return cls(name, uri or None)


def metric_key(text: str) -> str:
    """``text`` as an MLflow metric or parameter key (``mu/1:fc1`` → ``mu/1_fc1``)."""
    return _KEY.sub("_", text)[:250]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``a.b`` keys with text values (MLflow parameters are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[metric_key(name)] = str(value)[:6000]
    return flat


class MlflowTracker:
    """One MLflow run: parameters, metrics by step, artifacts. Use `open_tracker`."""

    def __init__(self, spec: TrackSpec, experiment: str, run_name: str,
                 warn: Callable[[str], None] | None = None) -> None:
        import logging

        for name in ("mlflow", "alembic"):  # their INFO lines ("Creating initial MLflow database tables…") are noise
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--track mlflow needs MLflow, which is not installed: pip install -c constraints.txt "
                              "-e \".[track]\" (or drop --track)") from None
        self._mlflow = mlflow
        self._warn = warn
        self._failed = False
        if spec.uri is None:
            folder = Path(DEFAULT_FOLDER).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()
        else:
            uri, artifacts = spec.uri, None
        self.uri = uri
        try:
            client = mlflow.MlflowClient(uri)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(
                experiment, artifact_location=artifacts)
            self._client = client
            self._run = client.create_run(experiment_id, run_name=run_name)
        except Exception as error:  # noqa: BLE001 - MLflow raises many kinds; one line names the URI
            raise ConfigError(f"cannot log to MLflow at {uri}: {' '.join(str(error).split())[:300]}; check "
                              f"--track") from None
        self.run_id = self._run.info.run_id

    def _guard(self, action: Callable[[], object]) -> None:
        if self._failed:
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 - tracking mirrors data hil already stored; never fatal
            self._failed = True
            if self._warn is not None:
                self._warn(f"warning: MLflow logging stopped ({' '.join(str(error).split())[:200]}); hil's own "
                           f"files are complete")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log settings (nested mappings flattened to ``a.b``)."""
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
            self._guard(partial(self._client.log_batch, self.run_id, params=items[start:start + 100]))

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        """Log finite numbers (None and NaN are skipped) at ``step``, in one batch."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(key), float(value), now, step or 0) for key, value in metrics.items()
                 if value is not None and math.isfinite(value)]
        for start in range(0, len(items), 1000):  # MLflow takes at most 1,000 metrics per batch
            self._guard(partial(self._client.log_batch, self.run_id, metrics=items[start:start + 1000]))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Copy a file (or a folder's files) into the run's artifacts."""
        if path.is_dir():
            self._guard(lambda: self._client.log_artifacts(self.run_id, str(path), folder))
        elif path.is_file():
            self._guard(lambda: self._client.log_artifact(self.run_id, str(path), folder))

    def finish(self, ok: bool) -> None:
        """End the run as FINISHED or FAILED."""
        self._guard(lambda: self._client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED"))


class TrackedProgress:
    """A training progress display whose finished epochs are also logged to ``tracker`` (per-epoch metrics)."""

    def __init__(self, display: Any, tracker: MlflowTracker) -> None:
        self.display, self.tracker = display, tracker

    def start(self, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        """Forwarded to the display."""
        self.display.start(epochs, steps_per_epoch, first_epoch)

    def step(self, epoch: int, loss: float) -> None:
        """Forwarded to the display."""
        self.display.step(epoch, loss)

    def epoch_done(self, record: Any) -> None:
        """Forwarded to the display, and the epoch's metrics logged at step = epoch."""
        self.display.epoch_done(record)
        self.tracker.log_metrics({"loss": record.loss, "train_accuracy": record.train_accuracy,
                                  "test_accuracy": record.test_accuracy, "lr": record.lr,
                                  "epoch_seconds": record.seconds}, step=record.epoch)


def log_walk(tracker: MlflowTracker, report: Any, folder: Path) -> None:
    """A walk's μ per site with its interval and its failed-point count as metrics, ``mu.json`` as artifact."""
    metrics: dict[str, float | None] = {"failed_points": len(report.failed)}
    for site in report.sites:
        if site.fit.status == "ok":
            metrics.update({f"mu/{site.label}": site.fit.mu, f"mu_low/{site.label}": site.fit.mu_low,
                            f"mu_high/{site.label}": site.fit.mu_high})
    tracker.log_metrics(metrics)
    tracker.log_artifact(folder / "mu.json")


@contextmanager
def open_tracker(track: str | None, experiment: str, run_name: str,
                 warn: Callable[[str], None] | None = None) -> Iterator[MlflowTracker | None]:
    """The tracker ``--track`` names (None when not given), ended FINISHED, or FAILED on an error.

    Raises:
        ConfigError: Unknown tracker, MLflow not installed (names the extra), or the URI cannot be reached.
    """
    if track is None:
        yield None
        return
    tracker = MlflowTracker(TrackSpec.parse(track), experiment, run_name, warn)
    try:
        yield tracker
    except BaseException:
        tracker.finish(ok=False)
        raise
    tracker.finish(ok=True)
