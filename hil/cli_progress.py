"""Rich progress bar for `hil.training.train` (epoch, loss, accuracy, ETA)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hil.training import EpochRecord


class RichTrainProgress:
    """`hil.training.TrainProgress` drawn with rich on ``console`` (stderr in the CLI)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = None
        self._epochs = 0
        self._accuracy = "–"

    def __enter__(self) -> RichTrainProgress:
        return self  # the display starts in `start`, so early errors print no empty bar

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._task is not None:
            self._progress.stop()

    def start(self, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        self._epochs = epochs
        self._progress.start()
        self._task = self._progress.add_task(
            self._describe(first_epoch, float("nan")), total=epochs * steps_per_epoch,
            completed=first_epoch * steps_per_epoch)

    def _describe(self, epoch: int, loss: float) -> str:
        return f"epoch {epoch + 1}/{self._epochs}  loss {loss:.3f}  test acc {self._accuracy}"

    def step(self, epoch: int, loss: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1, description=self._describe(epoch, loss))

    def epoch_done(self, record: EpochRecord) -> None:
        self._accuracy = f"{record.test_accuracy:.1%}"
        if self._task is not None:
            self._progress.update(self._task, description=self._describe(record.epoch - 1, record.loss))
