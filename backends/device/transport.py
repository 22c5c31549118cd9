"""Byte transports under the AMVM/1 driver: serial (pyserial), TCP, record/replay, and a fake.

A transport moves bytes and nothing else; framing, retries and resynchronisation live in the
driver. Every read takes a timeout and returns ``b""`` when it expires — there is no blocking
read without one.
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from hil.errors import ConfigError, DeviceError


@runtime_checkable
class Transport(Protocol):
    """A bidirectional byte stream with timeouts."""

    description: str

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        ...

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` seconds (at least one byte), or ``b""``."""
        ...

    def drain(self) -> None:
        """Discard input already received (resynchronise after a timeout)."""
        ...

    def close(self) -> None:
        """Release the port or socket. Safe to call twice."""
        ...


class _DuplexFd:
    """Writes without deadlock: while a write waits for room, whatever arrives is read and kept.

    A pipelined host writes request k+1 while the device sends reply k; if neither side read
    while writing, both kernel buffers would fill and both would block forever.
    """

    def __init__(self, fd: int, description: str) -> None:
        self.fd = fd
        self.description = description
        self.inbox = bytearray()

    def write(self, data: bytes, timeout: float = 10.0) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceError(f"{self.description}: the device stopped accepting data for {timeout:g} s")
            readable, writable, _ = select.select([self.fd], [self.fd], [], remaining)
            if readable:
                self._receive()
            if writable:
                try:
                    view = view[os.write(self.fd, view[:1 << 16]):]
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise DeviceError(f"{self.description}: write failed ({error}); is the device still "
                                      f"connected?") from None

    def _receive(self) -> None:
        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError as error:
            raise DeviceError(f"{self.description}: link lost ({error}); check that the device is powered and "
                              f"connected, then rerun (stored results are kept)") from None
        if not data:
            raise DeviceError(f"{self.description}: link closed by the device; check that it is powered and "
                              f"connected, then rerun (stored results are kept)")
        self.inbox += data

    def read(self, timeout: float) -> bytes:
        if not self.inbox:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                self._receive()
        data = bytes(self.inbox)
        self.inbox.clear()
        return data

    def drain(self) -> None:
        self.inbox.clear()
        try:
            while select.select([self.fd], [], [], 0)[0]:
                self._receive()
                self.inbox.clear()
        except DeviceError:
            pass


class _FdTransport:
    """A transport over one non-blocking file descriptor (serial port, pty, socket)."""

    description: str
    _duplex: _DuplexFd

    def write(self, data: bytes) -> None:
        self._duplex.write(data)

    def read(self, timeout: float) -> bytes:
        return self._duplex.read(timeout)

    def drain(self) -> None:
        self._duplex.drain()


class SerialTransport(_FdTransport):
    """A serial port (or a pty) through pyserial, raw 8N1."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        import serial

        self.description = f"serial:{port}"
        try:
            self._port = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=5.0)
        except (serial.SerialException, OSError, ValueError) as error:
            reason = str(error).split(":")[-1].strip() or str(error)
            raise DeviceError(f"cannot open serial port {port}: {reason}; check the path (hil device emulate "
                              f"prints one) and permissions") from None
        os.set_blocking(self._port.fileno(), False)
        self._duplex = _DuplexFd(self._port.fileno(), self.description)

    def drain(self) -> None:
        super().drain()
        try:
            self._port.reset_input_buffer()
        except OSError:
            pass

    def close(self) -> None:
        self._port.close()


class TcpTransport(_FdTransport):
    """A TCP socket (``host:port``)."""

    def __init__(self, address: str, connect_timeout: float = 5.0) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"bad TCP address {address!r}; use HOST:PORT, e.g. 127.0.0.1:5025")
        self.description = f"tcp:{address}"
        try:
            self._socket = socket.create_connection((host, int(port)), timeout=connect_timeout)
        except OSError as error:
            raise DeviceError(f"cannot connect to {address}: {error.strerror or error}; is the device "
                              f"(or hil device emulate --tcp {address}) running?") from None
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.setblocking(False)
        self._duplex = _DuplexFd(self._socket.fileno(), self.description)

    def close(self) -> None:
        self._socket.close()


class FakeTransport:
    """Checks the exact bytes a driver writes and answers with canned bytes (unit tests).

    Args:
        exchange: ``(expected write, reply)`` pairs in order, like pymeasure's expected_protocol.
    """

    def __init__(self, exchange: Iterable[tuple[bytes, bytes]]) -> None:
        self.description = "fake"
        self._exchange = list(exchange)
        self._inbox = b""

    def write(self, data: bytes) -> None:
        if not self._exchange:
            raise AssertionError(f"unexpected write {data!r}: the exchange is finished")
        expected, reply = self._exchange.pop(0)
        if data != expected:
            raise AssertionError(f"wrote {data!r}, expected {expected!r}")
        self._inbox += reply

    def read(self, timeout: float) -> bytes:
        data, self._inbox = self._inbox, b""
        return data

    def drain(self) -> None:
        self._inbox = b""

    def close(self) -> None:
        pass

    @property
    def finished(self) -> bool:
        """True when every expected write happened."""
        return not self._exchange


class RecordingTransport:
    """Wraps a transport and appends every write and read to a ``.hilrec`` file (JSON lines)."""

    def __init__(self, inner: Transport, path: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.description = f"{inner.description} (recording to {path})"
        self._file = Path(path).open("w")
        self._file.write(json.dumps({"hilrec": 1, "transport": inner.description}) + "\n")

    def _log(self, direction: str, data: bytes) -> None:
        self._file.write(json.dumps({"d": direction, "x": data.hex()}) + "\n")

    def write(self, data: bytes) -> None:
        self._log("w", data)
        self.inner.write(data)

    def read(self, timeout: float) -> bytes:
        data = self.inner.read(timeout)
        if data:
            self._log("r", data)
        return data

    def drain(self) -> None:
        self.inner.drain()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.inner.close()


MAX_RECORDING = 1 << 30
"""Largest recording file read back (bytes)."""


def _replay_event(event: object, path: str | os.PathLike[str], line: int) -> tuple[str, bytes]:
    """One recorded event ``{"d": "w"|"r", "x": HEX}``, or a one-line error naming the line."""
    if isinstance(event, dict) and event.get("d") in ("w", "r") and isinstance(event.get("x"), str):
        try:
            return event["d"], bytes.fromhex(event["x"])
        except ValueError:
            pass
    raise ConfigError(f"{path} is not a hil recording (line {line} is not a recorded read or write); record again")


class ReplayTransport:
    """Serves a recorded exchange back; the driver must write exactly what was recorded."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.description = f"replay:{path}"
        try:
            size = Path(path).stat().st_size
            if size > MAX_RECORDING:
                raise ConfigError(f"recording {path} is {size:,} bytes, more than a hil recording may be "
                                  f"({MAX_RECORDING:,}); record a shorter session")
            lines = Path(path).read_text().splitlines()
            header = json.loads(lines[0])
            events = [json.loads(line) for line in lines[1:]]
        except FileNotFoundError:
            raise ConfigError(f"recording {path} does not exist; record one with --record FILE") from None
        except (OSError, ValueError, IndexError) as error:
            raise ConfigError(f"{path} is not a hil recording ({str(error)[:200]}); record one with "
                              f"--backend 'device:ADDRESS#record=FILE'") from None
        if not isinstance(header, dict) or header.get("hilrec") != 1:
            raise ConfigError(f"{path} is not a hil recording (version 1); record one with "
                              f"--backend 'device:ADDRESS#record=FILE'")
        self._events = [_replay_event(event, path, number) for number, event in enumerate(events, start=2)]
        self._written = b""

    def write(self, data: bytes) -> None:
        self._written += data
        while self._events and self._events[0][0] == "w" and self._written:
            expected = self._events[0][1]
            if not self._written.startswith(expected[:len(self._written)]):
                raise DeviceError(f"{self.description}: the host sent different bytes than in the recording "
                                  f"(model, data or settings changed); record again")
            if len(self._written) < len(expected):
                return
            self._written = self._written[len(expected):]
            self._events.pop(0)

    def read(self, timeout: float) -> bytes:
        if self._events and self._events[0][0] == "r":
            return self._events.pop(0)[1]
        if not self._events:
            raise DeviceError(f"{self.description}: the recording ended; the host asked for more than was recorded")
        time.sleep(0)
        return b""

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_transport(address: str) -> Transport:
    """Open ``serial:PATH``, ``tcp:HOST:PORT`` or ``replay:FILE``.

    Raises:
        ConfigError: Unknown transport or malformed address.
        DeviceError: The port or socket cannot be opened.
    """
    kind, _, rest = address.partition(":")
    if not rest:
        raise ConfigError(f"bad device address {address!r}; use serial:/dev/ttyUSB0, tcp:127.0.0.1:5025 or "
                          f"replay:FILE.hilrec")
    if kind == "serial":
        return SerialTransport(rest)
    if kind == "tcp":
        return TcpTransport(rest)
    if kind == "replay":
        return ReplayTransport(rest)
    raise ConfigError(f"unknown device transport {kind!r} in {address!r}; use serial:, tcp:, visa: or replay: "
                      f"(or a driver registered in the hil.drivers entry-point group)")
