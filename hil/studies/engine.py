"""The study engine: a study is independent points, a function that evaluates them, and the store.

A *study* (a walk, a train-per-point walk, a hardening study) lists its points, groups pending
points into units of work (a unit is evaluated in one call: for a backend that forks noise
streams, all draws of one site in one stacked forward), evaluates a unit, and turns an outcome
into a stored row. An *executor* runs the units — in this process (`LocalExecutor`), or elsewhere
— and hands every outcome back to the one process that writes the results store. Every point
carries its own seed, so the same seeds give the same stored numbers whatever the executor and
the order in which the units run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from hil.backends.spec import BackendOption, integer_at_least, non_empty_text, non_negative_number, parse_options
from hil.errors import ConfigError, HilError, StudyError
from hil.walking.store import PointKey, PointResult, ResultStore

Point = TypeVar("Point")
ProgressCallback = Callable[[int], None]
"""Called with the number of points just finished (or found already stored)."""


@dataclass(frozen=True)
class Outcome:
    """What evaluating one point measured.

    Attributes:
        accuracy: Test accuracy in [0, 1].
        loss: Mean test loss, or None when the study does not track it.
        seconds: Wall time spent on the point (a unit's time shared among its points).
    """

    accuracy: float
    loss: float | None
    seconds: float


@dataclass(frozen=True)
class UnitFailure:
    """A unit whose evaluation raised something other than a `HilError`, on every one of its tries.

    Its points are recorded as failed (`ResultStore.record_failure`) and the study goes on; a rerun retries
    them. A `HilError` (bad settings, a device gone) is never a unit failure: it stops the study, since every
    other unit would meet it too.

    Attributes:
        error: ``Type: message`` of the last try's exception.
        attempts: Tries made.
    """

    error: str
    attempts: int

    @property
    def tries(self) -> str:
        """``3 tries`` / ``1 try``, for messages."""
        return f"{self.attempts} {'try' if self.attempts == 1 else 'tries'}"


def describe_error(error: BaseException) -> str:
    """``Type: message`` on one line (what a failure record keeps)."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"


def evaluate_with_retries(evaluate: Callable[[list[Point]], list[Outcome]], unit: list[Point],
                          retries: int) -> list[Outcome] | UnitFailure:
    """``evaluate(unit)``, tried up to ``1 + retries`` times; a `UnitFailure` if every try raised.

    Raises:
        HilError: Raised by ``evaluate`` (not retried: it names something the user must fix).
    """
    last: BaseException | None = None
    for _ in range(retries + 1):
        try:
            return evaluate(unit)
        except HilError:
            raise
        except Exception as error:  # noqa: BLE001 - any other failure of one unit is recorded, not fatal
            last = error
    assert last is not None
    return UnitFailure(describe_error(last), retries + 1)


Result = list[Outcome] | UnitFailure
"""What an executor yields for a unit: its outcomes, or the failure of all its tries."""


class Study(Protocol[Point]):
    """What the engine needs from a study."""

    def key(self, point: Point) -> PointKey:
        """The point's results-store key."""
        ...

    def units(self, pending: Sequence[Point]) -> Iterable[list[Point]]:
        """Pending points grouped into units of work, each evaluated in one `evaluate` call."""
        ...

    def evaluate(self, unit: list[Point]) -> list[Outcome]:
        """Evaluate one unit; one outcome per point, in order."""
        ...

    def result(self, point: Point, outcome: Outcome) -> PointResult:
        """The stored row of a point."""
        ...


class Executor(Protocol):
    """Runs units of work and yields each with its outcomes (or its `UnitFailure`), in any order."""

    name: str

    def map(self, evaluate: Callable[[list[Point]], list[Outcome]],
            units: Iterable[list[Point]]) -> Iterator[tuple[list[Point], Result]]:
        """Evaluate every unit; yield ``(unit, outcomes or failure)`` as each finishes."""
        ...


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after (None: unchanged).

    Convolutions (and so trainings) sum in a thread-dependent order, so the stored numbers of a study are
    identical across executors only at the same thread count per unit: ``local#threads=1`` stores what
    ``ray#threads=1`` stores.
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LocalExecutor:
    """Runs the units one after the other in this process.

    Args:
        retries: Extra tries of a unit that raised (default 0: in one process a failure mostly repeats).
        threads: torch threads while a unit runs; None keeps this process's count.
    """

    name = "local"

    def __init__(self, retries: int = 0, threads: int | None = None) -> None:
        self.retries = retries
        self.threads = threads

    def map(self, evaluate: Callable[[list[Point]], list[Outcome]],
            units: Iterable[list[Point]]) -> Iterator[tuple[list[Point], Result]]:
        """Evaluate the units in order, yielding each as it finishes."""
        for unit in units:
            with torch_threads(self.threads):
                result = evaluate_with_retries(evaluate, unit, self.retries)
            yield unit, result


def _ray(options: Mapping[str, Any]) -> Executor:
    from hil.studies.ray_executor import RayExecutor  # Ray is imported only when chosen

    return RayExecutor(**options)


EXECUTORS: dict[str, Callable[[Mapping[str, Any]], Executor]] = {"local": lambda options: LocalExecutor(**options),
                                                                   "ray": _ray}
"""Executor name → factory taking the spec's typed ``#k=v;…`` options (declared in `EXECUTOR_OPTIONS`)."""

EXECUTOR_OPTIONS: dict[str, tuple[BackendOption, ...]] = {
    "local": (BackendOption("retries", integer_at_least(0), "extra tries of a unit that raised (default 0)"),
              BackendOption("threads", integer_at_least(1), "torch threads per unit (default: this process's)")),
    "ray": (
        BackendOption("workers", integer_at_least(1), "CPUs of the local Ray started for the run"),
        BackendOption("address", non_empty_text, "a running Ray cluster (ray://HEAD:10001 or auto)"),
        BackendOption("retries", integer_at_least(0), "extra tries of a unit whose worker died or that raised"),
        BackendOption("gpus", non_negative_number, "GPUs per task (fractions share one: 0.25)"),
        BackendOption("threads", integer_at_least(1), "torch threads per task (default: this process's)"),
    ),
}
"""Executor name → the options its spec takes, parsed by the same code as backend options."""


def parse_executor_spec(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``NAME[#k=v;…]`` into the name and its typed options.

    Raises:
        ConfigError: Unknown executor, an item without ``=``, an unknown or repeated option, a bad value.
    """
    name, _, rest = text.strip().partition("#")
    if name not in EXECUTOR_OPTIONS:
        raise ConfigError(f"unknown executor {name!r}; choose one of: {', '.join(sorted(EXECUTORS))}")
    allowed = {option.name: option for option in EXECUTOR_OPTIONS[name]}
    items = [item for item in rest.split(";") if item]
    return name, parse_options(items, allowed, kind="executor", name=name, text=text)


def get_executor(name: str | Executor | None) -> Executor:
    """The executor a spec names (``local``, ``ray``, ``ray#workers=2``; None → ``local``), or ``name`` itself.

    Raises:
        ConfigError: Unknown executor, unknown option, or the executor's package is missing.
    """
    if name is None:
        return LocalExecutor()
    if not isinstance(name, str):
        return name
    base, options = parse_executor_spec(name)
    return EXECUTORS[base](options)


@dataclass
class StudyRun(Generic[Point]):
    """Runs the points of one study into one experiment of a results store."""

    study: Study[Point]
    store: ResultStore
    experiment: str
    executor: Executor | None = None
    progress: ProgressCallback | None = None

    def run(self, points: Sequence[Point]) -> int:
        """Evaluate those of ``points`` not yet stored, recording each unit as it comes back.

        A unit that fails on every try (`UnitFailure`) has its points recorded as failed and the others go on.

        Returns:
            How many points were evaluated (already stored ones are skipped).

        Raises:
            StudyError: After the last unit, when some points failed (they are in the store's failures; a rerun
                retries them).
            HilError: From a unit (stops the study at once; what was stored stays).
        """
        done = self.store.done(self.experiment)
        pending = [p for p in points if self.study.key(p) not in done]
        if self.progress is not None and len(pending) < len(points):
            self.progress(len(points) - len(pending))
        ran = 0
        failed: list[UnitFailure] = []
        for unit, outcomes in get_executor(self.executor).map(self.study.evaluate, self.study.units(pending)):
            if isinstance(outcomes, UnitFailure):
                for point in unit:
                    self.store.record_failure(self.experiment, self.study.key(point), outcomes.error,
                                              outcomes.attempts)
                failed.extend([outcomes] * len(unit))
                if self.progress is not None:
                    self.progress(len(unit))
                continue
            if len(outcomes) != len(unit):
                raise ConfigError(f"a study returned {len(outcomes)} outcomes for {len(unit)} points")
            for point, outcome in zip(unit, outcomes, strict=True):
                self.store.record(self.experiment, self.study.result(point, outcome))
            ran += len(unit)
            if self.progress is not None:
                self.progress(len(unit))
        if failed:
            raise StudyError(f"{len(failed)} of {len(pending)} points failed after {failed[0].tries} (first: "
                             f"{failed[0].error[:300]}); {ran} were stored, the failures are recorded in "
                             f"{self.store.path}: rerun the same command to retry them")
        return ran
