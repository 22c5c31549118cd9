"""An in-process `Transport` to an emulator (tests, notebooks): no pty, no socket, the same faults."""

from __future__ import annotations

import time

from hil.backends.device.emulator.device import DeviceEmulator
from hil.backends.device.emulator.faults import FaultInjector, Faults
from hil.backends.device.framing import FrameReader, encoded_limit
from hil.errors import DeviceError


class LoopbackTransport:
    """An in-process `Transport` to an emulator, with the same fault injection (tests, notebooks).

    Replies hit by a ``late`` fault are delivered after the next request is written (the host
    has timed out by then); ``delay`` faults are delivered at once.
    """

    def __init__(self, emulator: DeviceEmulator, faults: Faults | None = None) -> None:
        self.description = "loopback"
        self.emulator = emulator
        self.injector = FaultInjector(faults or Faults())
        self._reader = FrameReader(encoded_limit(emulator.caps.max_frame))
        self._inbox = b""
        self._late: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise DeviceError("loopback: link closed by the device")
        self._inbox += b"".join(self._late)
        self._late.clear()
        for encoded in self._reader.feed(data):
            reply = self.emulator.handle(encoded)
            if reply is None:
                continue
            out, wait, close = self.injector.apply(reply)
            if close:
                self.closed = True
                return
            if out is None:
                continue
            if wait >= self.injector.faults.late_s:
                self._late.append(out)
            else:
                self._inbox += out

    def read(self, timeout: float) -> bytes:
        if self._inbox:
            data, self._inbox = self._inbox, b""
            return data
        if self.closed:
            raise DeviceError("loopback: link closed by the device")
        time.sleep(timeout)
        return b""

    def drain(self) -> None:
        self._inbox = b""

    def close(self) -> None:
        self.closed = True
