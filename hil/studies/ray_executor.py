"""Run a study's units as Ray tasks: a local Ray by default, a cluster by address.

The study (model, data, backend) is put in Ray's object store once per run; each unit is one task that
calls the study's ``evaluate`` on a worker; outcomes come back to the driver, which alone writes the results
store, so resuming, exporting and reporting are unchanged. Numbers depend only on each point's seed, so
they equal the ``local`` executor's (tested). A unit whose worker died, or whose ``evaluate`` raised
something other than a `HilError`, is tried again up to ``retries`` times, then handed back as a
`UnitFailure` (its points are recorded as failed and the study goes on); a `HilError` stops the run with
that error, and what was stored before stays stored (rerun to resume). Ray is imported only here.

Spec: ``ray``, ``ray#workers=2`` (local Ray with that many CPUs), ``ray#address=ray://HEAD:10001`` (join a
cluster), ``ray#retries=3``, ``ray#threads=1`` (torch threads per task; see `RayExecutor`), ``ray#gpus=0.25``
(GPUs per task).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from hil.errors import ConfigError, HilError
from hil.studies.engine import Outcome, Result, UnitFailure, describe_error
from hil.validation import check_int, check_number

Point = TypeVar("Point")

class RayExecutor:
    """Evaluate units as Ray tasks and yield each as it finishes (any order).

    Args:
        workers: CPUs of the local Ray started when none is running (default: all of this machine's).
        address: A running cluster's address (``ray://HEAD:10001`` or ``auto``); None starts a local Ray.
        retries: Extra tries of a unit whose worker died or whose evaluation raised (not a `HilError`).
        threads: torch threads per task; None uses this process's count. Float results of convolutions (and
            so of trainings) depend on the thread count, so the stores equal a ``local`` run's at the same
            count: the default equals plain ``local``; ``threads=1`` (no two tasks fight over a core) equals
            ``local#threads=1``. A local Ray whose tasks would ask for more threads than this machine has
            cores gets a warning naming that choice.
        gpus: GPUs Ray reserves per task (0.25: four tasks share one); the cluster must have GPUs.

    Raises:
        ConfigError: Ray is not installed (names the extra), or bad options.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, retries: int = 2,
                 threads: int | None = None, gpus: float = 0.0) -> None:
        self.workers = None if workers is None else check_int(workers, "ray workers", low=1)
        self.gpus = check_number(gpus, "ray gpus (per task)", low=0)
        self.address = address
        self.retries = check_int(retries, "ray retries", low=0)
        self.threads = None if threads is None else check_int(threads, "ray threads", low=1)
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--executor ray needs Ray, which is not installed: pip install -c constraints.txt "
                              "-e \".[ray]\" (or use --executor local)") from None

    def _start(self) -> Any:
        import ray

        if not ray.is_initialized():
            if self.address is None:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray needs no token
            try:
                ray.init(address=self.address, num_cpus=self.workers if self.address is None else None,
                         include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = self.address or "a local Ray"
                raise ConfigError(f"cannot start or reach {where}: {str(error).splitlines()[0]}") from None
        return ray

    def map(self, evaluate: Callable[[list[Point]], list[Outcome]],
            units: Iterable[list[Point]]) -> Iterator[tuple[list[Point], Result]]:
        """Submit every unit, then yield ``(unit, outcomes or UnitFailure)`` as the tasks finish."""
        todo = list(units)
        if not todo:
            return
        ray = self._start()
        self._check_gpus(ray)
        try:
            study = ray.put(evaluate)
        except Exception as error:  # noqa: BLE001 - whatever cloudpickle refuses; a device backend says why
            raise ConfigError(f"this study cannot be sent to Ray workers: {error}") from None
        threads = self.threads
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        self._warn_oversubscribed(ray, threads, len(todo))
        task = ray.remote(max_retries=0, retry_exceptions=False, num_gpus=self.gpus)(_evaluate_unit)
        pending = {task.remote(study, unit, threads): (unit, 1) for unit in todo}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                unit, attempt = pending.pop(done[0])
                result = self._result(ray, done[0])
                if isinstance(result, UnitFailure) and attempt <= self.retries:
                    pending[task.remote(study, unit, threads)] = (unit, attempt + 1)
                    continue
                if isinstance(result, UnitFailure):
                    result = UnitFailure(result.error, attempt)
                yield unit, result
        finally:  # a HilError, an interrupt or a consumer that stops early: nothing keeps running
            for other in pending:
                ray.cancel(other, force=True)

    @staticmethod
    def _result(ray: Any, ref: Any) -> Result:
        """A finished task's outcomes, or its failure (a dead worker is one); a `HilError` is raised."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, BaseException) else error
            if isinstance(cause, HilError):
                raise cause from None
            return UnitFailure(describe_error(cause), 1)
        except ray.exceptions.RayError as error:  # the worker died (killed, out of memory) or the task was lost
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return UnitFailure(f"{type(error).__name__}: the Ray worker died ({first[:300]})", 1)

    def _warn_oversubscribed(self, ray: Any, threads: int, units: int) -> None:
        """Warn when a local Ray's concurrent tasks × torch threads exceed this machine's cores."""
        if self.address is not None:
            return  # a cluster's nodes are not this machine
        cores = os.cpu_count() or 1
        concurrent = min(units, int(ray.cluster_resources().get("CPU", 1)))
        if concurrent > 1 and concurrent * threads > cores:
            fitting = max(1, cores // concurrent)
            warnings.warn(f"ray: {concurrent} tasks × {threads} torch threads on {cores} cores oversubscribe them "
                          f"(measured here: slower than one worker); use ray#threads={fitting} "
                          f"(stores then equal local#threads={fitting}'s) or fewer workers", stacklevel=3)

    def _check_gpus(self, ray: Any) -> None:
        if self.gpus <= 0:
            return
        available = ray.cluster_resources().get("GPU", 0)
        if available < self.gpus:
            raise ConfigError(f"--gpus-per-point {self.gpus:g} asks for GPUs the Ray cluster does not have "
                              f"({available:g}); start workers with GPUs or drop it")


def _evaluate_unit(evaluate: Callable[[list[Any]], list[Outcome]], unit: list[Any], threads: int) -> Result:
    """One try of a unit on a worker: a raised non-`HilError` comes back as a `UnitFailure` (a `HilError` is raised)."""
    from hil.studies.engine import evaluate_with_retries, torch_threads

    with torch_threads(threads):
        return evaluate_with_retries(evaluate, unit, 0)
