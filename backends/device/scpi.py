"""AMVM/1 over SCPI text with IEEE-488.2 definite-length blocks (the VISA framing).

The host side: `ScpiDriver` speaks the command set through pyvisa (pyvisa-py for
``ASRL/dev/pts/N::INSTR`` and ``TCPIP::…::SOCKET``). The device side is
`hil.backends.device.emulator.scpi_session`.

Commands (docs/protocol.md §8):

=========================================  =================================================
``*IDN?``                                  identity
``*RST`` / ``*CLS``                        reset tiles / clear the error queue
``SYST:ERR?``                              ``<code>,"<message>"`` (``0,"No error"``)
``AMVM:PROT?``                             ``AMVM/1``
``AMVM:CAP?``                              rows,cols,slots,dac_bits,adc_bits,max_batch,max_repeats,max_frame,full_scale
``AMVM:STAT?``                             temperature,uptime,errors_total,loaded_mask
``AMVM:LOAD? <slot>,<rows>,<cols>,#block``  CRC32C of the stored int16 codes (decimal)
``AMVM:RUN? <slot>,<batch>,<repeats>,#block``  ``#block`` with the binary RUN reply body (§4)
``AMVM:RUNA? <slot>,<repeats>,<x1>,…``      one vector in ASCII → ``<sat>,<code>,…`` (repeat-major)
=========================================  =================================================

A query that fails queues an error and sends no reply (SCPI convention); the host reads
``SYST:ERR?`` after its timeout to say what went wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.backends.device.driver import DeviceStatus
from hil.backends.device.protocol import (
    PROTOCOL,
    Capabilities,
    RunReply,
    ieee_block,
    pack_codes,
    parse_reply,
)
from hil.backends.device.transport import DeviceError
from hil.errors import ConfigError


class ScpiDriver:
    """Host side of the SCPI framing through pyvisa.

    Args:
        resource: VISA resource name, e.g. ``ASRL/dev/pts/7::INSTR`` or ``TCPIP::127.0.0.1::5025::SOCKET``.
        timeout: Seconds per reply.
        library: pyvisa library spec: ``@py`` (pyvisa-py, default) or ``FILE.yaml@sim`` (pyvisa-sim).
    """

    def __init__(self, resource: str, *, timeout: float = 2.0, library: str = "@py") -> None:
        import pyvisa

        self.description = f"visa:{resource}"
        try:
            self._manager = pyvisa.ResourceManager(library)
            # open_resource is typed as the base Resource; every resource we open is message based
            self._instrument: Any = self._manager.open_resource(resource)
        except (pyvisa.Error, OSError, ValueError, ImportError) as error:
            raise DeviceError(f"cannot open VISA resource {resource}: {str(error).splitlines()[0]}; check the "
                              f"name (e.g. ASRL/dev/pts/7::INSTR) and that the device is on") from None
        instrument: Any = self._instrument
        instrument.read_termination = "\n"
        instrument.write_termination = "\n"
        instrument.timeout = int(timeout * 1000)
        self.timeout = timeout
        try:
            self.identity = self._query("*IDN?")
            protocol = self._query("AMVM:PROT?")
            if protocol != PROTOCOL:
                raise DeviceError(f"{self.description} speaks {protocol!r}; this hil speaks {PROTOCOL}")
            values = self._query("AMVM:CAP?").split(",")
            self._caps = parse_reply(self.description, "AMVM:CAP?",
                                     lambda: Capabilities(*(int(v) for v in values[:8]), float(values[8])))
        except BaseException:
            self.close()
            raise

    def _query(self, command: str) -> str:
        import pyvisa

        try:
            return self._instrument.query(command).strip()
        except pyvisa.errors.VisaIOError:
            raise DeviceError(self._explain(command)) from None

    def _explain(self, command: str) -> str:
        import pyvisa

        header = command.split(" ")[0]
        try:
            error = self._instrument.query("SYST:ERR?").strip()
        except pyvisa.errors.VisaIOError:
            return (f"{self.description} did not answer {header} within {self.timeout:g} s; check the resource "
                    f"name and that the device is on")
        return f"device error on {header}: {error}"

    def capabilities(self) -> Capabilities:
        """Capabilities read at connect time."""
        return self._caps

    def load_tile(self, slot: int, codes: np.ndarray) -> None:
        """Store a tile and check its CRC."""
        import crc32c
        import pyvisa

        rows, cols = codes.shape
        data = pack_codes(codes)
        try:
            self._instrument.write_raw(f"AMVM:LOAD? {slot},{rows},{cols},".encode() + ieee_block(data) + b"\n")
            text = self._instrument.read().strip()
        except pyvisa.errors.VisaIOError:
            raise DeviceError(self._explain("AMVM:LOAD?")) from None
        stored = parse_reply(self.description, "AMVM:LOAD?", lambda: int(text))
        if stored != crc32c.crc32c(data):
            raise DeviceError(f"tile in slot {slot} was stored corrupted (CRC mismatch)")

    def run(self, slot: int, inputs: np.ndarray, repeats: int) -> RunReply:
        """One binary-block RUN."""
        import pyvisa

        header = f"AMVM:RUN? {slot},{inputs.shape[0]},{repeats},".encode()
        try:
            self._instrument.write_raw(header + ieee_block(pack_codes(inputs)) + b"\n")
            body = self._instrument.read_binary_values(datatype="B", container=bytes, expect_termination=True)
        except pyvisa.errors.VisaIOError:
            raise DeviceError(self._explain("AMVM:RUN?")) from None
        return parse_reply(self.description, "AMVM:RUN?",
                           lambda: RunReply.unpack(bytes(body)).check(inputs.shape[0], repeats))

    def run_ascii(self, slot: int, vector: np.ndarray, repeats: int) -> tuple[bool, np.ndarray]:
        """One vector in ASCII (the slow baseline of benchmarks/device_link.py)."""
        text = self._query(f"AMVM:RUNA? {slot},{repeats}," + ",".join(map(str, vector.tolist())))
        def parse() -> tuple[bool, np.ndarray]:
            values = [int(v) for v in text.split(",")]
            return bool(values[0]), np.array(values[1:], dtype=np.int16).reshape(repeats, -1)

        return parse_reply(self.description, "AMVM:RUNA?", parse)

    def status(self) -> DeviceStatus:
        """Temperature, uptime, error count, loaded slots."""
        values = self._query("AMVM:STAT?").split(",")
        return parse_reply(self.description, "AMVM:STAT?",
                           lambda: DeviceStatus(float(values[0]), float(values[1]), int(values[2]), int(values[3])))

    def close(self) -> None:
        """Close the VISA session."""
        for closer in (getattr(self, "_instrument", None), getattr(self, "_manager", None)):
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # noqa: BLE001 - closing twice or a dead session must not raise
                pass


def open_visa(address: str, timeout: float, library: str | None) -> ScpiDriver:
    """``visa:RESOURCE`` → a `ScpiDriver`."""
    if not address:
        raise ConfigError("visa: needs a resource name, e.g. visa:ASRL/dev/pts/7::INSTR")
    return ScpiDriver(address, timeout=timeout, library=library or "@py")
