"""The marginal walk: what one more (or one fewer) execution of each layer is worth, measured on the hardware.

Guided repetitions need to know where an execution buys the most accuracy. The placement and SNR walks
answer it through a model (each layer measured alone, the layers' losses combined by a rule); at an
operating point where every layer is noisy at once, that model can be wrong — on the emulated chip at
σa 1.5 both rules lost to uniform. The marginal walk measures the answer where it is used: every
Linear/Conv layer on the hardware at its own noise, the executions of a base allocation (uniform at
``budget`` to start), and for each layer L the accuracy with L given one execution more and one fewer,
every allocation on the same paired draws. Moving one execution from layer i to layer j is then predicted
to change the accuracy by ``up[j] − down[i]``; each round makes the best such exchange when it is
predicted to gain, and the next round measures around the new allocation (a coordinate ascent on the
device). One exchange per round: exchanges do not add up (several at once overshoot, measured on the
twin). ``marginal.json`` holds every round and the final executions, which ``--compare-reps`` /
``--guided-reps`` use as ``guided-marginal``.

Draws are stored as they finish (a rerun resumes) and are seeded apart from the comparison's, so the
comparison on the device that follows tests the choice on fresh draws.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.noise import NoiseSpec, SiteOverride
from hil.seeding import derive_seed
from hil.validation import check_int


@dataclass(frozen=True)
class MarginalRound:
    """One round of the marginal walk.

    Attributes:
        executions: The allocation measured around (per layer, forward order).
        accuracy: Its mean accuracy over the draws.
        up: Per layer, mean paired gain of one execution more.
        down: Per layer, mean paired loss of one execution fewer (None where the layer has one).
        chosen: The allocation after this round's exchange (``executions`` when none is predicted to gain).
        predicted_gain: ``up[target] − down[source]`` of the exchange made (0 when none).
    """

    executions: tuple[int, ...]
    accuracy: float
    up: tuple[float, ...]
    down: tuple[float | None, ...]
    chosen: tuple[int, ...]
    predicted_gain: float

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return {"executions": list(self.executions), "accuracy": self.accuracy, "up": list(self.up),
                "down": list(self.down), "chosen": list(self.chosen), "predicted_gain": self.predicted_gain}


@dataclass(frozen=True)
class MarginalReport:
    """A marginal walk: the layers, the budget, each round and the executions it ends with."""

    backend: str
    budget: int
    layers: tuple[str, ...]
    rounds: tuple[MarginalRound, ...]

    @property
    def executions(self) -> tuple[int, ...]:
        """The final allocation (the last round's choice)."""
        return self.rounds[-1].chosen

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``marginal.json``)."""
        return {"backend": self.backend, "budget": self.budget, "layers": list(self.layers),
                "executions": dict(zip(self.layers, self.executions, strict=True)),
                "rounds": [r.to_dict() for r in self.rounds]}


def neighbours(executions: Sequence[int]) -> list[tuple[int, ...]]:
    """Each layer with one execution more, then each layer with one fewer (where it has more than one)."""
    more = [tuple(r + (i == layer) for i, r in enumerate(executions)) for layer in range(len(executions))]
    fewer = [tuple(r - (i == layer) for i, r in enumerate(executions)) for layer in range(len(executions))
             if executions[layer] > 1]
    return more + fewer


def best_exchange(executions: Sequence[int], up: Sequence[float],
                  down: Sequence[float | None]) -> tuple[tuple[int, ...], float]:
    """The allocation after the exchange with the largest predicted gain ``up[j] − down[i]``, and that gain.

    ``executions`` itself (gain 0) when no exchange is predicted to gain.
    """
    best, gain = tuple(executions), 0.0
    for source, loss in enumerate(down):
        if loss is None:
            continue
        for target, win in enumerate(up):
            if target != source and win - loss > gain:
                moved = list(executions)
                moved[source] -= 1
                moved[target] += 1
                best, gain = tuple(moved), win - loss
    return best, gain


def _name(round_index: int, executions: Sequence[int]) -> str:
    return f"round{round_index}:{'-'.join(str(r) for r in executions)}"


def marginal_walk_checkpoint(checkpoint: str | os.PathLike[str], backend: str | Any, out: str | os.PathLike[str],
                             *, budget: int = 2, draws: int = 5, rounds: int = 1, seed: int = 0,
                             budget_s: float | None = None, data_dir: str | None = None,
                             progress: Any = None) -> MarginalReport:
    """The marginal walk of ``checkpoint`` on ``backend`` into ``OUT/results.sqlite`` and ``OUT/marginal.json``.

    Args:
        checkpoint: A trained network.
        backend: A spec or open backend that places layers (``device:…``, ``twin:…``).
        out: Results folder (resumable).
        budget: Executions per layer on average (the comparison's ``--budget``).
        draws: Paired draws per allocation (≥ 2).
        rounds: Exchanges to try, each measured around the last.
        seed: Seed of the draws (apart from the comparison's).
        budget_s: Device seconds allowed per round (timed on its first point).
        data_dir: Override the dataset folder.
        progress: Factory: called with a round's point count, returns the per-point callback.

    Raises:
        ConfigError: A backend that cannot place layers, bad budget, draws or rounds, or a budget the
            walk does not fit.
        HilError: Bad checkpoint, unreachable device.
    """
    import json

    from hil.backends.base import PlacesLayers
    from hil.backends.spec import parse_backend_spec
    from hil.checkpoint import WEIGHTS
    from hil.runs import open_run
    from hil.studies.placement import run_within_budget
    from hil.studies.repetitions import RepetitionStudy
    from hil.walking.report import file_digest, open_store

    budget = check_int(budget, "--budget", low=1, note="(executions per layer on average)")
    rounds = check_int(rounds, "--rounds", low=1)
    if draws < 2:
        raise ConfigError(f"--repeats must be ≥ 2 for a marginal walk (a paired difference needs two draws), "
                          f"got {draws}")
    chosen = parse_backend_spec(backend) if isinstance(backend, str) else backend
    label = chosen.text if isinstance(backend, str) else str(backend.name)
    marked = NoiseSpec(sigma_add=1.0, sites="matmul")  # the hardware's own noise; σ only marks the sites noisy
    with open_run(checkpoint, chosen, marked, data_dir=data_dir) as run:
        if not isinstance(run.backend, PlacesLayers):
            raise ConfigError(f"a marginal walk measures executions on hardware (device:…, twin:…), not "
                              f"{run.backend.name!r}; give --backend device:ADDRESS or twin:PROFILE")
        layers = tuple(site.name for site in run.noisy.sites if site.is_matmul)
        config = {"kind": "marginal", "checkpoint": str(Path(checkpoint).resolve()),
                  "weights": file_digest(Path(checkpoint) / WEIGHTS), "dataset": run.data.name, "backend": label,
                  "budget": budget, "draws": draws, "seed": seed}
        executions = (budget,) * len(layers)
        done: list[MarginalRound] = []
        with open_store(out) as store:
            experiment = store.register_experiment(config, name=f"marginal {Path(checkpoint).name}")
            for round_index in range(rounds):
                allocations = [executions, *neighbours(executions)]
                plans = [(_name(round_index, a), marked.with_overrides(
                    *(SiteOverride(site=layer, repeats=r) for layer, r in zip(layers, a, strict=True))))
                    for a in allocations]
                study = RepetitionStudy(run.noisy, run.data.test_x, run.data.test_y, plans, draws=draws,
                                        seed=derive_seed(seed, "marginal", round_index))
                callback = progress(len(study.points)) if progress else None
                run_within_budget(study, store, experiment, study.points, budget_s, callback)
                done.append(_round(store.results(experiment), round_index, allocations, draws))
                if done[-1].chosen == executions:
                    break
                executions = done[-1].chosen
    report = MarginalReport(label, budget, layers, tuple(done))
    (Path(out) / "marginal.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _round(results: Sequence[Any], round_index: int, allocations: Sequence[tuple[int, ...]],
           draws: int) -> MarginalRound:
    """A round's summary from the stored draws of its allocations (paired by draw number)."""
    accuracy: dict[str, dict[int, float]] = {r.key.site: {} for r in results}
    for r in results:
        accuracy[r.key.site][r.key.repeat] = r.accuracy

    def draws_of(a: tuple[int, ...]) -> list[float]:
        return [accuracy[f"strategy:{_name(round_index, a)}"][d] for d in range(draws)]

    base = allocations[0]
    reference = draws_of(base)

    def paired(a: tuple[int, ...], sign: float) -> float:
        return statistics.fmean(sign * (x - y) for x, y in zip(draws_of(a), reference, strict=True))

    layers = len(base)
    up = tuple(paired(allocations[1 + layer], 1.0) for layer in range(layers))
    fewer = iter(allocations[1 + layers:])
    down = tuple(paired(next(fewer), -1.0) if base[layer] > 1 else None for layer in range(layers))
    chosen, gain = best_exchange(base, up, down)
    return MarginalRound(base, statistics.fmean(reference), up, down, chosen, gain)


def load_marginal(folder: str | os.PathLike[str]) -> dict[str, int] | None:
    """Layer → executions from a marginal walk folder (``marginal.json``), or None when it is not one.

    Raises:
        ConfigError: A ``marginal.json`` that cannot be read, or executions that are not integers ≥ 1.
    """
    import json

    from hil.validation import check_size

    path = Path(folder) / "marginal.json"
    if not path.is_file():
        return None
    check_size(path, "marginal walk")
    try:
        data = json.loads(path.read_text())
        table = data["executions"]
        rows = {str(layer): check_int(value, f"executions of {layer}", low=1, high=1024)
                for layer, value in table.items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"cannot read the marginal walk {path} ({error}); rerun hil walk --marginal") from None
    return rows
