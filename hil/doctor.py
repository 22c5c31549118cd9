"""What this installation has and can do: versions, CUDA, native codecs, serial ports, VISA backends.

``hil doctor`` prints it; a bug report should carry it. Checks never raise: a missing optional
package is reported as missing.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

PACKAGES = ("torch", "numpy", "scipy", "brevitas", "safetensors", "typer", "rich", "pyserial", "cobs", "crc32c",
            "pyvisa", "pyvisa-py", "pyvisa-sim", "tomli-w", "pyarrow", "ray", "mlflow")
"""Distributions whose versions are reported (read from their metadata: nothing is imported)."""

REQUIRED = ("torch", "numpy", "cobs", "crc32c", "pyserial", "pyvisa")


@dataclass(frozen=True)
class Check:
    """One line of the report.

    Attributes:
        name: What was checked.
        value: What was found.
        ok: False when it limits hil (a missing optional package is ok: it only limits an extra).
        advice: What to do about it (empty when ok).
    """

    name: str
    value: str
    ok: bool = True
    advice: str = ""


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def crc32c_is_hardware() -> bool:
    """True when ``crc32c`` uses the CPU's CRC32C instructions (else its software table)."""
    import crc32c

    return bool(getattr(crc32c, "hardware_based", False))


def checks() -> list[Check]:
    """Every check, in report order."""
    from hil._version import __version__

    found = [Check("hil", __version__), Check("python", platform.python_version()),
             Check("platform", platform.platform())]
    for name in PACKAGES:
        version = package_version(name)
        required = name in REQUIRED
        found.append(Check(name, version or "not installed", ok=version is not None or not required,
                           advice="" if version or not required else f"pip install -c constraints.txt {name}"))
    found.append(_cuda())
    from hil.backends.device.framing import cobs_is_native

    native = cobs_is_native()
    found.append(Check("cobs C extension", "yes" if native else "no (pure Python)", ok=native,
                       advice="" if native else "device links encode ~36× slower: reinstall cobs where a C "
                                                "compiler is present (pip install --force-reinstall --no-binary "
                                                "cobs cobs)"))
    found.append(Check("crc32c hardware", "yes" if crc32c_is_hardware() else "no (software table, still C)"))
    found.append(_serial_ports())
    found.append(_visa_backends())
    return found


def _cuda() -> Check:
    try:
        import torch
    except Exception:  # noqa: BLE001
        return Check("CUDA", "torch missing", ok=False, advice="pip install -c constraints.txt torch")
    if not torch.cuda.is_available():
        return Check("CUDA", "not available (sim, twin and training run on the CPU; gpu backend refused)")
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Check("CUDA", f"{torch.cuda.device_count()} device(s): {names}")


def _serial_ports() -> Check:
    try:
        from serial.tools import list_ports
    except Exception:  # noqa: BLE001
        return Check("serial ports", "pyserial missing", ok=False, advice="pip install -c constraints.txt pyserial")
    ports = [port.device for port in list_ports.comports()]
    return Check("serial ports", ", ".join(ports) if ports else "none found (a pty from hil device emulate works)")


def _visa_backends() -> Check:
    try:
        from pyvisa import highlevel
    except Exception:  # noqa: BLE001
        return Check("VISA backends", "pyvisa missing", ok=False, advice="pip install -c constraints.txt pyvisa")
    try:
        backends = highlevel.list_backends()
    except Exception as error:  # noqa: BLE001
        return Check("VISA backends", f"cannot list ({error})")
    return Check("VISA backends", ", ".join(backends) if backends else "none")
