"""``hil device emulate`` and ``hil device info`` (torch-free)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hil.cli.console import emit_json, stdout
from hil.cli.options import JsonFlag
from hil.errors import ConfigError

device_app = typer.Typer(help="Analog device: emulator and link checks.", no_args_is_help=True)


@device_app.command("emulate")
def emulate(
    port: Annotated[str | None, typer.Option("--port", help="pty: serve on a new pseudo-terminal.")] = None,
    tcp: Annotated[str | None, typer.Option("--tcp", help="Serve on HOST:PORT, e.g. 127.0.0.1:5025.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Device TOML (sigma_add, sigma_mul, seed, rows, "
                                                                 "cols, adc_bits, …).")] = None,
    sigma_add: Annotated[float | None, typer.Option("--sigma-add", help="Hidden σa (overrides --config).")] = None,
    sigma_mul: Annotated[float | None, typer.Option("--sigma-mul", help="Hidden σm (overrides --config).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of gains, offsets and noise.")] = None,
    faults: Annotated[str | None, typer.Option("--faults", help="e.g. drop=0.01,flip=0.01,delay=0.01.")] = None,
    framing: Annotated[str, typer.Option("--framing", help="binary (AMVM/1 frames, serial/TCP) or scpi "
                                                           "(text + IEEE blocks, for VISA).")] = "binary",
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Serve --tcp on a non-loopback address (no authentication: anyone who can reach "
                               "it can use it).")] = False,
    idle_s: Annotated[float, typer.Option(
        "--idle-s", min=0.1, help="Drop a TCP client silent this long, so the next is served.")] = 60.0,
) -> None:
    """Run an AMVM/1 device emulator in the foreground; prints where it listens, then serves until killed."""
    from hil.backends.device.emulator import (
        DeviceEmulator,
        EmulatorConfig,
        Faults,
        serve_pty,
        serve_tcp,
        with_overrides,
    )

    if (port is None) == (tcp is None):
        raise ConfigError("give exactly one of --port pty or --tcp HOST:PORT")
    if allow_remote and tcp is None:
        raise ConfigError("--allow-remote goes with --tcp HOST:PORT (a pty is local anyway)")
    if framing not in ("binary", "scpi"):
        raise ConfigError(f"--framing must be binary or scpi, got {framing!r}")
    if framing == "scpi" and faults:
        raise ConfigError("--faults apply to the binary framing only; drop --faults or use --framing binary")
    if port is not None and port != "pty":
        raise ConfigError(f"--port must be 'pty' (the emulator makes its own pseudo-terminal), got {port!r}")
    base = EmulatorConfig.from_toml(config) if config else EmulatorConfig()
    settings = with_overrides(base, sigma_add=sigma_add, sigma_mul=sigma_mul, seed=seed)
    fault_plan = Faults.parse(faults)
    emulator = DeviceEmulator(settings)

    def announce(where: str) -> None:
        sys.stdout.write(where + "\n")
        sys.stdout.flush()

    if port is not None:
        serve_pty(emulator, fault_plan, announce, framing)
    else:
        serve_tcp(emulator, fault_plan, str(tcp), announce, framing, allow_remote=allow_remote, idle_s=idle_s,
                  warn=lambda text: print(text, file=sys.stderr, flush=True))


@device_app.command("info")
def info(
    device: Annotated[str, typer.Option(
        "--device", help="serial:PATH, tcp:HOST:PORT, visa:RESOURCE, replay:FILE or NAME:ADDR.")],
    timeout: Annotated[float, typer.Option("--timeout", min=0.01, help="Seconds to wait per reply.")] = 2.0,
    as_json: JsonFlag = False,
) -> None:
    """Identity, protocol version, capabilities and status of a device."""
    from hil.backends.device.backend import open_driver
    from hil.backends.device.protocol import PROTOCOL

    driver = open_driver(device, timeout=timeout)
    try:
        caps = driver.capabilities()
        status = driver.status()
    finally:
        driver.close()
    data = {"device": device, "identity": driver.identity, "protocol": PROTOCOL, "capabilities": caps.to_dict(),
            "status": {"temperature": status.temperature, "uptime": status.uptime,
                       "errors_total": status.errors_total}}
    if as_json:
        emit_json(data)
        return
    lines = [f"identity: {driver.identity}", f"protocol: {PROTOCOL}",
             f"tile: {caps.rows}×{caps.cols}, {caps.slots} slots; DAC {caps.dac_bits} bit, ADC {caps.adc_bits} bit, "
             f"full scale {caps.full_scale:g}",
             f"limits: batch {caps.max_batch}, repeats {caps.max_repeats}, frame {caps.max_frame} bytes",
             f"status: {status.temperature:.1f} °C, up {status.uptime:.1f} s, {status.errors_total} errors so far"]
    for line in lines:  # the identity comes from the device: never read it as rich markup
        stdout.print(line, markup=False)
