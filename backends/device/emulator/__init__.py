"""The device side: an emulated AMVM/1 device, its faults, and the ways to serve it.

`model` holds the hidden truth (`EmulatorConfig`, `AnalogArray`), `device` the request handler
(`DeviceEmulator`), `faults` the fault injection, `serving` the pty/TCP loop and the child-process
helper, `loopback` an in-process transport, `scpi_session` the SCPI text framing. Nothing here is
imported by the host side (`hil.backends.device.backend`, `driver`, `transport`, `scpi`).
"""

from hil.backends.device.emulator.device import IDENTITY, REPLY_CACHE, DeviceEmulator
from hil.backends.device.emulator.faults import FAULT_KINDS, FaultInjector, Faults
from hil.backends.device.emulator.loopback import LoopbackTransport
from hil.backends.device.emulator.model import AnalogArray, EmulatorConfig, with_overrides
from hil.backends.device.emulator.scpi_session import ScpiSession
from hil.backends.device.emulator.serving import EmulatorProcess, serve_pty, serve_stream, serve_tcp

__all__ = ["FAULT_KINDS", "IDENTITY", "REPLY_CACHE", "AnalogArray", "DeviceEmulator", "EmulatorConfig",
           "EmulatorProcess", "FaultInjector", "Faults", "LoopbackTransport", "ScpiSession", "serve_pty",
           "serve_stream", "serve_tcp", "with_overrides"]
