"""Options shared by several verbs, and the one parser of each list-valued flag."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hil.errors import ConfigError

SigmaAdd = Annotated[float | None, typer.Option("--sigma-add", help="Additive noise σa (≥ 0).")]
SigmaMul = Annotated[float | None, typer.Option("--sigma-mul", help="Multiplicative noise σm (≥ 0).")]
Order = Annotated[str | None, typer.Option("--order", help="mul-first (default) or add-first.")]
Sites = Annotated[str | None, typer.Option(
    "--sites", help="all (default), matmul, or comma-separated site names/indices (e.g. 3:conv2,5).")]
Gradient = Annotated[str | None, typer.Option(
    "--gradient", help="constant (paper, default) or straight-through.")]
Executions = Annotated[int | None, typer.Option(
    "--executions", help="Executions averaged at every site (multi-execution), default 1.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
BackendOption = Annotated[str, typer.Option(
    "--backend", help="Backend spec: sim, sim#seed=3, gpu, device:serial:PATH, … (hil list; README).")]
ExecutorOption = Annotated[str, typer.Option(
    "--executor", help="Where study points run: local (this process), ray, ray#workers=2, "
                       "ray#address=ray://HEAD:10001; #threads=N sets torch threads per point "
                       "(ray#workers=2;threads=1 stores what local#threads=1 stores).")]
RayAddress = Annotated[str | None, typer.Option(
    "--ray-address", help="A running Ray cluster for --executor ray: ray://HEAD:10001 (Ray Client) or auto (run on "
                          "a node of the cluster).")]
GpusPerPoint = Annotated[float | None, typer.Option(
    "--gpus-per-point", min=0, help="GPUs Ray reserves for each study point (0.25: four share a GPU); with "
                                    "--executor ray on a cluster that has GPUs.")]
Track = Annotated[str | None, typer.Option(
    "--track", help="Log the run to MLflow: mlflow (./mlruns/mlflow.db) or mlflow:URI; needs the track extra.")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="Folder with dataset files.")]
FoldBn = Annotated[bool, typer.Option(
    "--fold-bn", help="Fold BatchNorm into the Linear/Conv before it, as an analog deployment runs it "
                      "(a conv's noise is then not scaled by the BN gain).")]
Preprocess = Annotated[str | None, typer.Option(
    "--preprocess", help="paper (default: images as [0, 1] pixels, speech as MFCCs, as Walking Noise) or "
                         "standard (inputs standardised to mean 0 / std 1).")]


def parse_list(text: str, what: str) -> list[str]:
    """Comma-separated items, stripped; an empty list is an error naming the flag ``what``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{what} is empty")
    return items


def parse_sites(text: str | None, keywords: tuple[str, ...] = ("all", "matmul")) -> str | tuple[str | int, ...] | None:
    """``--sites``: one of ``keywords`` as it is, else site names and indices (``3:conv2,5``)."""
    if text is None or text in keywords:
        return text
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--sites is empty; use {' or '.join(keywords)} or site names such as 3:conv2")
    return tuple(int(item) if item.isdigit() else item for item in items)


def noise_flags(sigma_add: float | None, sigma_mul: float | None, order: str | None,
                sites: str | None, gradient: str | None, executions: int | None) -> dict[str, Any]:
    """The noise flags as the keys of `hil.noise.NoiseSpec.from_dict` (None: not given)."""
    return {"sigma_add": sigma_add, "sigma_mul": sigma_mul, "order": order,
            "sites": parse_sites(sites), "gradient": gradient, "repeats": executions}


def executor_spec(executor: str, ray_address: str | None = None, gpus_per_point: float | None = None) -> str:
    """The executor spec with ``--ray-address`` and ``--gpus-per-point`` folded in as its options.

    Raises:
        ConfigError: Either flag without ``--executor ray``.
    """
    extras = [f"address={ray_address}"] if ray_address is not None else []
    if gpus_per_point is not None:
        extras.append(f"gpus={gpus_per_point!r}")
    if not extras:
        return executor
    if executor.partition("#")[0].strip() != "ray":
        flags = " and ".join(f for f, v in (("--ray-address", ray_address), ("--gpus-per-point", gpus_per_point))
                             if v is not None)
        raise ConfigError(f"{flags} go{'es' if ' and ' not in flags else ''} with --executor ray; add it")
    return executor + (";" if "#" in executor else "#") + ";".join(extras)
