"""The `Driver` interface under the device backend, and `AmvmDriver`, which speaks AMVM/1.

A driver loads integer weight tiles and runs integer input vectors with repeats; tiling,
scaling, saturation handling and averaging live above it in the device backend. Labs with their
own hardware implement `Driver` and register a factory in the ``hil.drivers`` entry-point group;
``--backend device:NAME:ADDRESS`` then uses it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hil.backends.device.framing import (
    Frame,
    FrameError,
    FrameReader,
    FrameType,
    decode_frame,
    encoded_limit,
    warn_if_pure_python_cobs,
)
from hil.backends.device.protocol import (
    ERROR_HEAD,
    LOAD_HEAD,
    PROTOCOL,
    RUN_HEAD,
    STATUS_BODY,
    Capabilities,
    Op,
    RunReply,
    pack_codes,
    parse_reply,
)
from hil.backends.device.transport import DeviceError, Transport


@dataclass(frozen=True)
class DeviceStatus:
    """Reply to STATUS."""

    temperature: float
    uptime: float
    errors_total: int
    loaded_slots: int


@runtime_checkable
class Driver(Protocol):
    """What the device backend needs from a piece of hardware."""

    identity: str

    def capabilities(self) -> Capabilities:
        """Tile size, resolutions and limits."""
        ...

    def load_tile(self, slot: int, codes: np.ndarray) -> None:
        """Store int16 weight codes (rows × cols) in ``slot``; raise `DeviceError` if not stored intact."""
        ...

    def run(self, slot: int, inputs: np.ndarray, repeats: int) -> RunReply:
        """Run int16 input codes (batch × rows) ``repeats`` times on the tile in ``slot``."""
        ...

    def status(self) -> DeviceStatus:
        """Temperature, uptime, error count."""
        ...

    def close(self) -> None:
        """Release the link. Safe to call twice."""
        ...


@dataclass
class LinkStats:
    """What the link went through (for reports and the fault tests)."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    corrupt: int = 0
    stale: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    payload_out: int = 0
    payload_in: int = 0


class AmvmDriver:
    """Host side of AMVM/1 binary framing over any `Transport`.

    Every request carries a sequence number. When the reply does not arrive within ``timeout``
    or arrives corrupt, the driver drains the input, and sends the same request again with the
    same sequence number and the retry flag; the device answers a repeated number from its reply
    cache, so a retry never runs a computation twice. After ``retries`` failed retries the
    device is declared unreachable.
    """

    def __init__(self, transport: Transport, *, timeout: float = 2.0, retries: int = 4) -> None:
        warn_if_pure_python_cobs()
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.stats = LinkStats()
        self._reader = FrameReader()
        self._backlog: list[bytes] = []  # received frames not yet looked at
        self._seq = 0
        try:
            self._hello()
            self.identity = self.request(Op.IDENT).decode(errors="replace")
            self._caps = parse_reply(transport.description, "CAPS", lambda: Capabilities.unpack(self.request(Op.CAPS)))
            self._reader.limit = encoded_limit(self._caps.max_frame)  # replies are bounded by the device's own
        except BaseException:
            transport.close()
            raise

    def _hello(self) -> None:
        try:
            reply = self.request(Op.HELLO, bytes([1, 1]))
        except FrameError as error:
            raise DeviceError(f"{self.transport.description}: {error}") from None
        if reply[:1] != b"\x01":
            raise DeviceError(f"{self.transport.description} chose protocol version {reply[:1].hex()}; "
                              f"this hil speaks {PROTOCOL}")

    # -- framing -------------------------------------------------------------------------------

    def request(self, op: Op, body: bytes = b"") -> bytes:
        """Send one request and return the reply body.

        Raises:
            DeviceError: No valid reply after all retries, or the device answered with an error.
        """
        return self.request_many(op, [body], window=1)[0]

    def request_many(self, op: Op, bodies: list[bytes], window: int = 2) -> list[bytes]:
        """Send requests with up to ``window`` outstanding at once; reply bodies in request order.

        Pipelining lets the next request travel while the device computes the previous one. On a
        timeout or a corrupt reply every outstanding request is resent with its own sequence
        number (the device answers those it already ran from its reply cache).

        Raises:
            DeviceError: No valid reply after all retries, or the device answered with an error.
        """
        results: list[bytes | None] = [None] * len(bodies)
        outstanding: dict[int, tuple[int, Frame]] = {}  # seq → (index, frame), in send order
        failures = 0
        sent = 0
        while sent < len(bodies) or outstanding:
            while sent < len(bodies) and len(outstanding) < window:
                self._seq = (self._seq + 1) & 0xFFFF
                frame = Frame(FrameType.REQUEST, self._seq, int(op), bodies[sent])
                outstanding[frame.seq] = (sent, frame)
                self.stats.requests += 1
                self.stats.payload_out += len(frame.body)
                self._send(frame)
                sent += 1
            reply = self._await(set(outstanding))
            if reply is None:
                failures += 1
                if failures > self.retries:
                    raise DeviceError(f"{self.transport.description} did not answer {op.name} within "
                                      f"{self.timeout:g} s after {self.retries + 1} tries; check the cable/port "
                                      f"and that the device is powered")
                self.stats.retries += 1
                self._reader.clear()
                self._backlog.clear()
                self.transport.drain()
                for _, frame in outstanding.values():
                    self._send(Frame(FrameType.REQUEST, frame.seq, frame.op, frame.body, flags=1))
                continue
            if reply.type == FrameType.ERROR:
                message = reply.body.decode(errors="replace")
                raise DeviceError(f"device error {reply.status} on {op.name}: {message}")
            index, _ = outstanding.pop(reply.seq)
            results[index] = reply.body
            self.stats.payload_in += len(reply.body)
        return [r if r is not None else b"" for r in results]

    def _send(self, frame: Frame) -> None:
        wire = frame.encode()
        self.transport.write(wire)
        self.stats.bytes_out += len(wire)

    def _await(self, expected: set[int]) -> Frame | None:
        """The next reply to one of ``expected``, or None after a timeout or a corrupt frame."""
        import time

        deadline = time.monotonic() + self.timeout
        while True:
            while self._backlog:
                encoded = self._backlog.pop(0)
                try:
                    reply = decode_frame(encoded)
                except FrameError as error:
                    if "version" in str(error):
                        raise DeviceError(f"{self.transport.description}: {error}") from None
                    self.stats.corrupt += 1
                    self._backlog.clear()
                    return None
                if reply.seq in expected and reply.type != FrameType.REQUEST:
                    return reply
                self.stats.stale += 1  # a late answer to an earlier try: already handled
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stats.timeouts += 1
                return None
            data = self.transport.read(remaining)
            self.stats.bytes_in += len(data)
            self._backlog.extend(self._reader.feed(data))

    # -- operations --------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Capabilities read at connect time."""
        return self._caps

    def load_tile(self, slot: int, codes: np.ndarray) -> None:
        """Store a tile; compares the device's CRC of what it stored with the host's."""
        import crc32c

        rows, cols = codes.shape
        data = pack_codes(codes)
        reply = self.request(Op.LOAD, LOAD_HEAD.pack(slot, rows, cols) + data)
        (stored,) = parse_reply(self.transport.description, "LOAD", lambda: struct.unpack("<I", reply[:4]))
        if stored != crc32c.crc32c(data):
            raise DeviceError(f"tile in slot {slot} was stored corrupted (CRC {stored:08x} ≠ "
                              f"{crc32c.crc32c(data):08x}); the link or the device memory is faulty")

    def run(self, slot: int, inputs: np.ndarray, repeats: int) -> RunReply:
        """Run input codes on a loaded tile (one RUN; the caller respects max_batch and max_frame)."""
        return self.run_many(slot, [inputs], repeats)[0]

    def run_many(self, slot: int, batches: list[np.ndarray], repeats: int, window: int = 2) -> list[RunReply]:
        """Several RUNs on one tile, pipelined (``window`` requests in flight)."""
        bodies = [RUN_HEAD.pack(slot, b.shape[0], repeats) + pack_codes(b) for b in batches]
        replies = self.request_many(Op.RUN, bodies, window)
        return [parse_reply(self.transport.description, "RUN",
                            lambda body=body, b=b: RunReply.unpack(body).check(len(b), repeats))
                for body, b in zip(replies, batches, strict=True)]

    def status(self) -> DeviceStatus:
        """Temperature, uptime, error count, loaded slots."""
        body = self.request(Op.STATUS)
        return parse_reply(self.transport.description, "STATUS",
                           lambda: DeviceStatus(*STATUS_BODY.unpack(body[:STATUS_BODY.size])))

    def reset(self) -> None:
        """Clear tiles and the error queue."""
        self.request(Op.RESET)

    def pop_error(self) -> tuple[int, str]:
        """Oldest queued device error, ``(0, "No error")`` when empty."""
        body = self.request(Op.ERROR_POP)
        (code,) = parse_reply(self.transport.description, "ERROR_POP", lambda: ERROR_HEAD.unpack_from(body))
        return code, body[ERROR_HEAD.size:].decode(errors="replace")

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()
