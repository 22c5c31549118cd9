"""Run a study's units as Ray tasks: a local Ray by default, a cluster by address.

The study (model, data, backend) is put in Ray's object store once per run; each unit is one task that
calls the study's ``evaluate`` on a worker; outcomes come back to the driver, which alone writes the results
store, so resuming, exporting and reporting are unchanged. Numbers depend only on each point's seed, so
they equal the ``local`` executor's (tested). A worker that dies is retried by Ray (``max_retries``); an
error inside ``evaluate`` stops the run with that error, and what was stored before stays stored (rerun to
resume). Ray is imported only here, when the executor is chosen.

Spec: ``ray``, ``ray#workers=2`` (local Ray with that many CPUs), ``ray#address=ray://HEAD:10001`` (join a
cluster), ``ray#retries=3``, ``ray#threads=1`` (torch threads per task; see `RayExecutor`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from hil.errors import ConfigError, HilError
from hil.studies.engine import Outcome
from hil.validation import check_int

Point = TypeVar("Point")

class RayExecutor:
    """Evaluate units as Ray tasks and yield each as it finishes (any order).

    Args:
        workers: CPUs of the local Ray started when none is running (default: all of this machine's).
        address: A running cluster's address (``ray://HEAD:10001`` or ``auto``); None starts a local Ray.
        retries: Times Ray re-runs a task whose worker died.
        threads: torch threads per task; None uses this process's count. Float results of convolutions (and
            so of trainings) depend on the thread count, so only the default stores numbers identical to
            ``local``'s; ``threads=1`` avoids oversubscribing a small machine at the price of that identity.

    Raises:
        ConfigError: Ray is not installed (names the extra), or bad options.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, retries: int = 2,
                 threads: int | None = None) -> None:
        self.workers = None if workers is None else check_int(workers, "ray workers", low=1)
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
            units: Iterable[list[Point]]) -> Iterator[tuple[list[Point], list[Outcome]]]:
        """Submit every unit, then yield ``(unit, outcomes)`` as the tasks finish."""
        todo = list(units)
        if not todo:
            return
        ray = self._start()
        try:
            study = ray.put(evaluate)
        except Exception as error:  # noqa: BLE001 - whatever cloudpickle refuses; a device backend says why
            raise ConfigError(f"this study cannot be sent to Ray workers: {error}") from None
        threads = self.threads
        if threads is None:
            import torch

            threads = torch.get_num_threads()
        task = ray.remote(max_retries=self.retries, retry_exceptions=False)(_evaluate_unit)
        pending = {task.remote(study, unit, threads): unit for unit in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            unit = pending.pop(ref)
            try:
                outcomes = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause if isinstance(error.cause, BaseException) else error
                for other in pending:
                    ray.cancel(other)
                if isinstance(cause, HilError):
                    raise cause from None
                raise HilError(f"a study unit failed on a Ray worker: {type(cause).__name__}: {cause}") from None
            yield unit, outcomes


def _evaluate_unit(evaluate: Callable[[list[Any]], list[Outcome]], unit: list[Any], threads: int) -> list[Outcome]:
    import torch

    torch.set_num_threads(threads)
    return evaluate(unit)
