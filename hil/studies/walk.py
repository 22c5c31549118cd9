"""Inference-only Walking Noise as a study: accuracy at every (site, σ, repeat) point on any backend.

A point injects its noise at its site (or at every site for a global point) on top of what the
backend computes there, the rest of the network as the backend runs it clean: exact on ``sim``,
with the hardware's own noise on a device. The draws come from the point's own seed.

On a backend that forks seeded noise streams (`ForksNoiseStreams`: ``sim``, ``gpu``),
single-site points use the cached-prefix path: the activations up to the site are the same for
every σ and repeat, so each batch runs the prefix once and the rest of the network once on all
(σ, repeat) draws stacked along the batch dimension. Each draw is made exactly as the one-point
path makes it (same seed, same operations), so both paths store the same accuracies.

A backend with noise of its own that it can draw per stacked draw (`DrawsPerBlock`: ``twin``)
stacks too. Its prefix is noisy, so a single-site point's backend noise comes from two streams:
the prefix's, seeded by (sweep seed, site, repeat) and so shared by every σ of one repeat
(common random numbers: the curve's steps are the injected noise's, not the prefix's), and the
rest of the network's, seeded by the point. Each batch runs the prefix once per repeat, then the
rest on that repeat's σ draws stacked, each block drawing from its point's stream; the one-point
path is the same computation with one draw, so both store the same accuracies. Other backends
(a device, whose noise is physical) evaluate points one by one.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from hil.backends.base import Backend, DrawsPerBlock, ForksNoiseStreams, SiteCall
from hil.backends.gaussian import GaussianBackend
from hil.noise import SiteNoise
from hil.noisy_model import NoisyModel, SiteHook
from hil.seeding import derive_seed
from hil.studies.engine import Executor, Outcome, ProgressCallback, StudyRun
from hil.studies.sweep_study import SweepStudy
from hil.walking.store import ResultStore
from hil.walking.sweep import SweepPoint, SweepSpec, point_noise

if TYPE_CHECKING:
    from hil.walking.adaptive import AdaptivePlan
    from hil.walking.report import WalkReport

MAX_STACKED_ROWS = 8192
"""Rows per stacked forward (batch × draws); bounds memory of the cached-prefix path."""
MAX_STACKED_ELEMENTS = 2**20
"""Elements of the stacked site tensor per forward: beyond a few MB the rest of the network runs
slower per row than the one-point path (caches), so early, wide sites stack fewer draws."""
MAX_STACKED_ELEMENTS_OWN_NOISE = 2**18
"""The same bound on a `DrawsPerBlock` backend, whose later matmuls (the twin's tiles, in float64)
fall out of cache sooner: measured on LeNet-5, stacking beyond it is slower than the one-point path."""


def noise_stream(backend: Backend, seed: int) -> Backend:
    """Where a point's injected noise is drawn: the backend's own fork, else a seeded Gaussian emulator."""
    if isinstance(backend, ForksNoiseStreams):
        return backend.fork(seed)
    return GaussianBackend(backend.device, seed)


class InferenceWalk(SweepStudy):
    """Inference-only walk of a trained model on a test set (a `Study` of `SweepPoint`).

    Args:
        noisy: The model wrapped on any backend.
        inputs: Test inputs.
        labels: Test labels.
        spec: The sweep.
    """

    def __init__(self, noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, spec: SweepSpec) -> None:
        self.noisy = noisy.eval()
        self.inputs = inputs
        self.labels = labels
        self.own_noise = isinstance(noisy.backend, DrawsPerBlock)
        self.stacks = spec.cached_prefix and (self.own_noise or isinstance(noisy.backend, ForksNoiseStreams))
        super().__init__(spec, noisy.sites)

    # -- the Study protocol ----------------------------------------------------------------

    def units(self, pending: Sequence[SweepPoint]) -> Iterable[list[SweepPoint]]:
        """Runs of points sharing a site, sized so a stacked forward stays under `MAX_STACKED_ROWS`."""
        if not pending:
            return
        rows = min(self.spec.batch_size, len(self.labels))
        unit: list[SweepPoint] = []
        for point in pending:
            if unit and (point.site_index != unit[0].site_index or len(unit) >= self._chunk(point, rows)):
                yield unit
                unit = []
            unit.append(point)
        yield unit

    def evaluate(self, unit: list[SweepPoint]) -> list[Outcome]:
        """Accuracy and mean loss of every point of ``unit`` (stacked when the backend allows)."""
        started = time.perf_counter()
        if len(unit) == 1 or not self.stacks or unit[0].site_index < 0:
            measured = [self.evaluate_one(p) for p in unit]
        else:
            measured = self.evaluate_streamed(unit) if self.own_noise else self.evaluate_stacked(unit)
        seconds = (time.perf_counter() - started) / len(unit)
        return [Outcome(accuracy, loss, seconds) for accuracy, loss in measured]

    # -- evaluation ------------------------------------------------------------------------

    def _batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        device = self.noisy.backend.device
        for start in range(0, len(self.inputs), self.spec.batch_size):
            end = start + self.spec.batch_size
            yield self.inputs[start:end].to(device), self.labels[start:end].to(device)

    def _hooks(self, point: SweepPoint, stream: Backend) -> dict[int, SiteHook]:
        plan = point_noise(point).resolve(self.noisy.sites)
        hooks: dict[int, SiteHook] = {}
        for site, noise in zip(self.noisy.sites, plan, strict=True):
            if not noise.is_clean:
                call = SiteCall(site.index, site.name, site.kind, noise)
                hooks[site.index] = functools.partial(_perturb, stream, call)
        return hooks

    def evaluate_one(self, point: SweepPoint) -> tuple[float, float]:
        """(accuracy, mean loss) of one point: one forward per batch with its noise injected."""
        if self.own_noise and point.site_index >= 0:
            return self.evaluate_streamed([point])[0]
        seed = point.seed(self.spec.seed)
        # a backend's own noise must not replay the injected draws (both would start from ``seed``)
        self.noisy.backend.reseed(derive_seed(seed, "draws") if self.own_noise else seed)
        hooks = self._hooks(point, noise_stream(self.noisy.backend, seed))
        correct, loss = 0.0, 0.0
        with torch.no_grad():
            for x, y in self._batches():
                logits = self.noisy.forward_with_hooks(x, hooks)
                correct += (logits.argmax(dim=1) == y).sum().item()
                loss += F.cross_entropy(logits, y, reduction="sum").item()
        return correct / len(self.labels), loss / len(self.labels)

    evaluate_naive = evaluate_one  # the name the cached-prefix tests compare against

    def evaluate_stacked(self, points: list[SweepPoint]) -> list[tuple[float, float]]:
        """(accuracy, mean loss) of single-site points sharing one site, prefix computed once per batch."""
        site = self.noisy.sites[points[0].site_index]
        return self._stacked_batches(site.index, self._injection(site, points), len(points))

    def evaluate_streamed(self, points: list[SweepPoint]) -> list[tuple[float, float]]:
        """(accuracy, mean loss) of single-site points sharing one site on a `DrawsPerBlock` backend.

        Per batch and repeat: the prefix once with the (site, repeat) stream, then the rest of the
        network on the repeat's draws stacked, block i drawing the backend's noise from point i's stream.
        """
        site = self.noisy.sites[points[0].site_index]
        measured: dict[int, tuple[float, float]] = {}
        try:
            for repeat in dict.fromkeys(p.repeat for p in points):
                group = [i for i, p in enumerate(points) if p.repeat == repeat]
                results = self._streamed_repeat(site, repeat, [points[i] for i in group])
                measured.update(zip(group, results, strict=True))
        finally:  # one stream for the whole batch again, whatever happened
            self.noisy.backend.reseed(derive_seed(self.spec.seed, "draws"))
        return [measured[i] for i in range(len(points))]

    def _streamed_repeat(self, site: Any, repeat: int, points: list[SweepPoint]) -> list[tuple[float, float]]:
        """`evaluate_streamed` for the points of one repeat: they share the prefix's stream."""
        backend = self.noisy.backend
        assert isinstance(backend, DrawsPerBlock)
        device, base = self.noisy.backend.device, self.spec.seed
        prefix = torch.Generator(device=device).manual_seed(derive_seed(base, "draws", site.index, repeat))
        rest = [torch.Generator(device=device).manual_seed(derive_seed(p.seed(base), "draws")) for p in points]
        inject = self._injection(site, points)

        def expand(clean: torch.Tensor) -> torch.Tensor:
            backend.draw_from(rest)
            return inject(clean)

        return self._stacked_batches(site.index, expand, len(points), lambda: backend.draw_from([prefix]))

    def _injection(self, site: Any, points: list[SweepPoint]) -> SiteHook:
        """The hook that repeats a site's output once per point, each with the point's own noise."""
        streams = [noise_stream(self.noisy.backend, p.seed(self.spec.seed)) for p in points]
        calls = [SiteCall(site.index, site.name, site.kind, SiteNoise(p.sigma_add, p.sigma_mul)) for p in points]

        def expand(clean: torch.Tensor) -> torch.Tensor:
            return torch.cat([stream.perturb(clean, call) for stream, call in zip(streams, calls, strict=True)])

        return expand

    def _stacked_batches(self, site_index: int, expand: SiteHook, draws: int,
                         before: Callable[[], None] | None = None) -> list[tuple[float, float]]:
        """(accuracy, mean loss) of ``draws`` stacked draws: per batch, ``before()`` then one forward."""
        correct = torch.zeros(draws, dtype=torch.float64)
        loss = torch.zeros(draws, dtype=torch.float64)
        with torch.no_grad():
            for x, y in self._batches():
                if before is not None:
                    before()
                logits = self.noisy.forward_with_site_hook(x, site_index, expand)
                logits = logits.reshape(draws, len(y), -1)
                correct += (logits.argmax(dim=2) == y).sum(dim=1).double().cpu()
                per_sample = F.cross_entropy(logits.flatten(0, 1), y.repeat(draws), reduction="none")
                loss += per_sample.reshape(draws, len(y)).sum(dim=1).double().cpu()
        count = len(self.labels)
        return [(c / count, v / count) for c, v in zip(correct.tolist(), loss.tolist(), strict=True)]

    def _chunk(self, point: SweepPoint, rows: int) -> int:
        """How many draws of ``point``'s site to stack in one forward."""
        if point.site_index < 0 or not self.stacks:
            return 1
        per_sample = max(1, self.noisy.sites[point.site_index].numel)
        elements = MAX_STACKED_ELEMENTS_OWN_NOISE if self.own_noise else MAX_STACKED_ELEMENTS
        return max(1, min(MAX_STACKED_ROWS // rows, elements // (rows * per_sample)))

    # -- running ---------------------------------------------------------------------------

    def run(self, store: ResultStore, experiment: str, progress: ProgressCallback | None = None,
            executor: Executor | None = None) -> int:
        """Evaluate every point not yet in ``store``; record each as it finishes. Returns points run."""
        return self.run_points(self.points, store, experiment, progress, executor)

    def run_points(self, points: Sequence[SweepPoint], store: ResultStore, experiment: str,
                   progress: ProgressCallback | None = None, executor: Executor | None = None) -> int:
        """Evaluate those of ``points`` not yet in ``store``, recording each. Returns points run."""
        return StudyRun(self, store, experiment, executor, progress).run(points)


def walk_checkpoint(checkpoint: str | os.PathLike[str], spec: SweepSpec, out: str | os.PathLike[str], *,
                    backend: str = "sim", data_dir: str | None = None,
                    progress: Any = None, adaptive: AdaptivePlan | None = None,
                    executor: Executor | str | None = None, write_summary: bool = True,
                    fold_bn: bool = False) -> WalkReport:
    """Inference-only Walking Noise on a trained checkpoint, on ``backend``; resumable through ``out``.

    With ``adaptive`` each site gets an adaptive σ design instead of the fixed grid ``spec.sigmas``.
    ``write_summary=False`` leaves ``OUT/mu.json`` alone (studies that keep many walks in one store).
    ``progress`` is a factory: called with the number of points, it returns the per-point callback.
    ``fold_bn`` walks the network with its BatchNorm folded into the layers before it (`hil.models.fold`).

    Raises:
        HilError: Bad checkpoint, backend, sites or grid.
    """
    from hil.backends.spec import parse_backend_spec
    from hil.checkpoint import WEIGHTS
    from hil.data import LEGACY_PREPROCESS
    from hil.errors import ConfigError
    from hil.runs import open_run
    from hil.studies.engine import get_executor
    from hil.walking.report import file_digest, fit_experiment, open_store, write_mu

    chosen = parse_backend_spec(backend)
    runner = get_executor(executor)
    with open_run(checkpoint, chosen, data_dir=data_dir, fold_bn=fold_bn) as run:
        data = run.data
        walk = InferenceWalk(run.noisy, data.test_x, data.test_y, spec)
        config: dict[str, Any] = {
            "kind": "inference", "checkpoint": str(Path(checkpoint).resolve()),
            "weights": file_digest(Path(checkpoint) / WEIGHTS), "dataset": data.name,
            "num_classes": data.num_classes, "test_samples": len(data.test_y), "sweep": spec.to_dict()}
        if chosen.name != "sim":  # sim walks keep the experiment ids they had before backends were selectable
            config["backend"] = chosen.text
        if data.preprocess != LEGACY_PREPROCESS:  # likewise walks of standardised checkpoints
            config["preprocess"] = data.preprocess
        if fold_bn:
            config["fold_bn"] = True
        if walk.own_noise:  # the backend's own noise streams (see the module docstring)
            config["backend_draws"] = "prefix per (site, repeat), rest per point"
        if adaptive is not None:
            if spec.noise == "mul" or spec.is_global:
                raise ConfigError("--adaptive supports per-site add and mixed noise (log σ); drop --adaptive")
            config["adaptive"] = adaptive.to_dict()
        with open_store(out) as store:
            experiment = store.register_experiment(config, name=f"walk {Path(checkpoint).name}")
            if adaptive is None:
                walk.run(store, experiment, progress(len(walk.points)) if progress else None, runner)
            else:
                from hil.walking.adaptive import AdaptiveWalk

                walker = AdaptiveWalk(walk, adaptive, data.num_classes, len(data.test_y), runner)
                for index in sorted({p.site_index for p in walk.points}):
                    walker.run_site(index, store, experiment)
            report = fit_experiment(store, experiment)
    if write_summary:
        write_mu(report, out)
    return report


def _perturb(stream: Backend, call: SiteCall, tensor: torch.Tensor) -> torch.Tensor:
    return stream.perturb(tensor, call)
