"""The CLI's progress bars (rich, on stderr): training steps and study points, with ETA."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _bar(console: Console, label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=False)


class ProgressBar:
    """One bar: ``start(total)`` draws it (so early errors print no empty bar), ``advance(n)`` moves it."""

    def __init__(self, console: Console, label: str = "{task.description}") -> None:
        self._progress = _bar(console, label)
        self._task: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._task is not None:
            if kind is not None:  # a failed run ends in its one error line, not in a half-drawn bar
                self._progress.update(self._task, visible=False)
            self._progress.stop()

    def start(self, total: int, completed: int = 0, description: str = "") -> None:
        """Show the bar with ``total`` steps, ``completed`` of them done."""
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=completed)

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Move the bar ``steps`` forward (and change its text)."""
        if self._task is not None:
            extra: dict[str, Any] = {} if description is None else {"description": description}
            self._progress.update(self._task, advance=steps, **extra)

    def describe(self, description: str) -> None:
        """Change the bar's text."""
        if self._task is not None:
            self._progress.update(self._task, description=description)

    def points(self, total: int) -> Callable[[int], None]:
        """A study's progress factory: start at ``total`` points, return the per-point callback."""
        self.start(total, description="points")
        return self.advance


class TrainProgress(ProgressBar):
    """`hil.training.TrainProgress` as a bar: epoch, loss and test accuracy in its text."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._epochs = 0
        self._accuracy = "–"

    def start(self, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:  # type: ignore[override]
        self._epochs = epochs
        super().start(epochs * steps_per_epoch, first_epoch * steps_per_epoch,
                      self._describe(first_epoch, float("nan")))

    def _describe(self, epoch: int, loss: float) -> str:
        return f"epoch {epoch + 1}/{self._epochs}  loss {loss:.3f}  test acc {self._accuracy}"

    def step(self, epoch: int, loss: float) -> None:
        """One optimiser step done."""
        self.advance(1, self._describe(epoch, loss))

    def epoch_done(self, record: Any) -> None:
        """An epoch finished (record: `hil.training.EpochRecord`)."""
        self._accuracy = f"{record.test_accuracy:.1%}"
        self.describe(self._describe(record.epoch - 1, record.loss))
