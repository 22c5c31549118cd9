"""``hil calibrate`` and ``hil calibrate check`` (thin over `hil.calibration.job`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hil.cli.console import emit_json, print_wide, stdout
from hil.cli.options import JsonFlag
from hil.errors import ConfigError

calibrate_app = typer.Typer(help="Estimate a device's gain/offset, σa and σm; check a profile.",
                            invoke_without_command=True)

Device = Annotated[str | None, typer.Option(
    "--device", help="serial:PATH, tcp:HOST:PORT, visa:RESOURCE, NAME:ADDR, or sim (in-process emulator).")]
EmulatorToml = Annotated[Path | None, typer.Option("--config", help="Emulator TOML for --device sim.")]
Timeout = Annotated[float, typer.Option("--timeout", min=0.01, help="Seconds to wait per reply.")]


@calibrate_app.callback()
def calibrate(
    ctx: typer.Context,
    device: Device = None,
    out: Annotated[Path | None, typer.Option("--out", help="Profile to write (.toml or .json).")] = None,
    samples: Annotated[int, typer.Option("--samples", min=40, help="Executions measured (all levels).")] = 10_000,
    budget_s: Annotated[float | None, typer.Option("--budget-s", min=0.0, help="Device time allowed.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Folder for plots (PNG + SVG).")] = None,
    config: EmulatorToml = None,
    timeout: Timeout = 2.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing profile.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON on stdout.")] = False,
) -> None:
    """Measure the device with a D-optimal design and write a versioned calibration profile."""
    if ctx.invoked_subcommand is not None:
        return
    if device is None:
        raise ConfigError("--device is required, e.g. --device serial:/dev/pts/7 (or sim)")
    from hil.calibration.design import CalibrationDesign
    from hil.calibration.job import calibrate as run_calibration
    from hil.calibration.job import default_out
    from hil.calibration.profile import write_profile

    target = default_out(out)
    if target.exists() and not overwrite:  # refuse before using device time
        raise ConfigError(f"{target} exists; pass --overwrite to replace it or choose another --out")
    result = run_calibration(device, CalibrationDesign(samples=samples), budget_s=budget_s, timeout=timeout,
                             emulator_config=str(config) if config else None)
    write_profile(result.profile, target, overwrite=overwrite)
    plots = []
    if report is not None:
        from hil.calibration.report import write_report

        plots = write_report(result, report)
    if as_json:
        emit_json({**result.profile.to_dict(), "profile": str(target), "plots": [str(p) for p in plots]})
        return
    print_calibration(result.profile)
    stdout.print(f"profile: {target}" + (f"   plots: {report}" if plots else ""))


def _interval(item: dict[str, Any]) -> str:
    return f"[{item['low']:.4g}, {item['high']:.4g}]"


def print_calibration(profile: Any) -> None:
    """The calibration table."""
    est = profile.estimates
    table = Table(title=f"calibration of {profile.device.get('identity', '?')} "
                        f"({profile.design.get('samples', '?')} samples, {profile.seconds:.2f} s device time)")
    for column in ("quantity", "estimate", "95 % interval", "note"):
        table.add_column(column)
    for name, label in (("sigma_add", "σa"), ("sigma_mul", "σm")):
        item = est[name]
        table.add_row(label, f"{item['value']:.5g}", _interval(item),
                      f"SE {item['se']:.2g} = CRLB; OLS: {item['ols_efficiency']:.2g} efficient")
    for name in ("gain", "offset"):
        item = est[name]
        table.add_row(f"{name} ({len(item['values'])} columns)", f"mean {item['mean']:.4g}",
                      f"min {item['min']:.4g}, max {item['max']:.4g}", f"median SE {item['median_se']:.2g}")
    table.add_row("ADC quantisation", f"{est['quantisation_variance']:.3g}", "", "Δ²/12, subtracted from σa²")
    drift = profile.noise_card().drift
    if drift is not None:
        up = f" (device up {drift.uptime:.3g} s at its middle)" if drift.uptime else ""
        up += f", r {drift.correlation:+.2f} with the per-K slopes" if drift.correlation else ""
        for unit, span, slopes in (
                ("K", f"over {drift.span:.3g} K", ((drift.offset_per_kelvin, drift.offset_se),
                                                   (drift.sigma_add_per_kelvin, drift.sigma_add_se))),
                ("s", f"over {drift.duration:.3g} s{up}", ((drift.offset_per_second, drift.offset_per_second_se),
                                                            (drift.sigma_add_per_second,
                                                             drift.sigma_add_per_second_se)))):
            (offset, offset_se), (sigma, sigma_se) = slopes
            half = drift.critical(0.025)  # t with the fit's residual dof
            if offset_se > 0 or sigma_se > 0:
                table.add_row(f"drift per {unit}", f"offset {offset:+.3g}, σa {sigma:+.2%}",
                              f"offset [{offset - half * offset_se:+.3g}, {offset + half * offset_se:+.3g}], "
                              f"σa [{sigma - half * sigma_se:+.2%}, {sigma + half * sigma_se:+.2%}]",
                              f"{span}, {drift.dof} dof" if drift.dof else span)
    print_wide(stdout, table)
    checks = Table(title="diagnostics")
    for column in ("check", "status", "detail"):
        checks.add_column(column)
    colours = {"pass": "green", "warn": "yellow", "info": "cyan"}
    for item in profile.diagnostics:
        checks.add_row(item["name"], f"[{colours.get(item['status'], 'white')}]{item['status']}[/]", item["detail"])
    print_wide(stdout, checks)


@calibrate_app.command("check")
def check_profile(
    device: Device = None,
    profile: Annotated[Path | None, typer.Option("--profile", help="Profile to test.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=40, help="Executions re-measured.")] = 2000,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Also compare this network's accuracy on the device, its twin and sim.")] = None,
    config: EmulatorToml = None,
    timeout: Timeout = 2.0,
    as_json: JsonFlag = False,
) -> None:
    """Re-measure a short design; exit 0 when the device still matches the profile, 3 when it drifted."""
    if device is None or profile is None:
        raise ConfigError("give --device and --profile, e.g. hil calibrate check --device sim --profile profile.toml")
    from hil.calibration.job import check
    from hil.calibration.profile import read_profile

    loaded = read_profile(profile)
    items, _ = check(device, loaded, samples=samples, timeout=timeout,
                     emulator_config=str(config) if config else None)
    valid = all(item.ok for item in items)
    network = None
    if checkpoint is not None:
        from hil.calibration.job import accuracy_check

        network = accuracy_check(device, loaded, checkpoint, timeout=timeout,
                                 emulator_config=str(config) if config else None)
        valid = valid and network.agree
    if as_json:
        emit_json({"valid": valid, "items": [i.to_dict() for i in items],
                   "network": None if network is None else network.to_dict()})
    else:
        table = Table(title=f"profile {profile} vs device {device}")
        for column in ("quantity", "profile", "now", "|z| (max)", "ok", "note"):
            table.add_column(column)
        for item in items:
            table.add_row(item.name, f"{item.profile:.5g}", f"{item.measured:.5g}", f"{abs(item.z):.1f}",
                          "[green]yes[/]" if item.ok else "[red]no[/]", item.note)
        print_wide(stdout, table)
        if network is not None:
            stdout.print(f"network {checkpoint}: device {network.device.mean:.2%} ± {network.device.std:.2%}, "
                         f"twin {network.twin.mean:.2%} ± {network.twin.std:.2%} — "
                         + ("agree" if network.agree else "[red]disagree[/]")
                         + f"; Gaussian mapping on sim {network.sim.mean:.2%} ± {network.sim.std:.2%}")
        stdout.print("profile still valid" if valid else "[bold red]the device no longer matches the profile: "
                                                         "calibrate again[/]")
    if not valid:
        raise typer.Exit(3)
