"""The device side of AMVM/1: one request frame in, one reply frame out, with a reply cache.

`DeviceEmulator.handle` turns one request frame into one reply frame; `run_operation` executes an
operation for either framing (binary frames here, SCPI text in `scpi_session`). The analog
computation itself is `AnalogArray` (`model`).
"""

from __future__ import annotations

import struct
from collections import OrderedDict

import numpy as np

from hil.backends.device.emulator.model import AnalogArray, EmulatorConfig
from hil.backends.device.framing import OVERSIZED, Frame, FrameError, FrameType, decode_frame
from hil.backends.device.protocol import (
    ERROR_HEAD,
    LOAD_HEAD,
    RUN_HEAD,
    STATUS_BODY,
    ErrorCode,
    Op,
    RunReply,
    pack_codes,
    unpack_codes,
)

IDENTITY = "hil,AMVM emulator,EMU-0001,{version}"
REPLY_CACHE = 64
"""Replies kept by sequence number, so a retried request is answered without running twice."""


ERROR_QUEUE = 32
"""Errors kept for ERROR_POP / SYST:ERR?; later ones are counted in STATUS, not kept."""


class DeviceEmulator:
    """The device side of AMVM/1: one request frame in, one reply frame out."""

    def __init__(self, config: EmulatorConfig) -> None:
        from hil._version import __version__

        self.config = config
        self.caps = config.capabilities()
        self.identity = IDENTITY.format(version=__version__)
        self.array = AnalogArray(config)
        self.tiles: dict[int, np.ndarray] = {}
        self.errors: list[tuple[int, str]] = []
        self.errors_total = 0
        self.replies: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()

    # -- state -----------------------------------------------------------------------------

    @property
    def temperature(self) -> float:
        """Device temperature, °C."""
        return self.array.temperature

    @property
    def executions(self) -> int:
        """Vector executions so far."""
        return self.array.executions

    @property
    def gain(self) -> np.ndarray:
        """Hidden per-column gains (the truth a calibration estimates)."""
        return self.array.gain

    @property
    def offset(self) -> np.ndarray:
        """Hidden per-column offsets."""
        return self.array.offset

    def queue_error(self, code: int, message: str) -> None:
        """Count an error and keep it for ERROR_POP/SYST:ERR? while fewer than `ERROR_QUEUE` wait (any framing)."""
        if len(self.errors) < ERROR_QUEUE:
            self.errors.append((int(code), message))
        self.errors_total += 1

    def _error(self, code: ErrorCode, message: str) -> tuple[int, bytes]:
        self.queue_error(code, message)
        return int(code), message.encode()

    # -- requests --------------------------------------------------------------------------

    def handle(self, encoded: bytes) -> bytes | None:
        """Reply (wire bytes) to one received frame (without delimiter); None to stay silent.

        Corrupt frames are answered with nothing: the host times out and retries. A retried
        request (same sequence number, operation and body) is answered from the reply cache
        without running again; HELLO starts a new session and empties the cache.
        """
        if encoded == OVERSIZED:
            self._error(ErrorCode.TOO_LARGE, f"frame exceeds max_frame ({self.caps.max_frame} bytes); dropped")
            return None
        try:
            frame = decode_frame(encoded)
        except FrameError as error:
            if "version" in str(error):
                seq = struct.unpack_from("<H", _cobs_payload(encoded), 2)[0] if len(encoded) > 4 else 0
                code, body = self._error(ErrorCode.VERSION_UNSUPPORTED, str(error))
                return Frame(FrameType.ERROR, seq, 0, body, code).encode()
            self._error(ErrorCode.FRAME_CORRUPT, str(error))
            return None
        if frame.type != FrameType.REQUEST:
            return None
        if frame.op == Op.HELLO:
            self.replies.clear()  # a new session: its sequence numbers start again
        key = (frame.seq, frame.op, hash(frame.body))
        if key in self.replies:
            return self.replies[key]
        reply = self._execute(frame)
        self.replies[key] = reply
        while len(self.replies) > REPLY_CACHE:
            self.replies.popitem(last=False)
        return reply

    def _execute(self, frame: Frame) -> bytes:
        status, body = self.run_operation(frame.op, frame.body)
        kind = FrameType.ERROR if status else FrameType.RESPONSE
        return Frame(kind, frame.seq, frame.op, body, status).encode()

    def run_operation(self, op_code: int, body: bytes) -> tuple[int, bytes]:
        """Execute one operation, whatever the framing: (0, reply body) or (error code, message).

        Errors are also queued for ERROR_POP.
        """
        try:
            op = Op(op_code)
        except ValueError:
            return self._error(ErrorCode.COMMAND, f"unknown operation 0x{op_code:02x}")
        try:
            return 0, getattr(self, f"_op_{op.name.lower()}")(body)
        except _DeviceError as error:
            return self._error(error.code, error.message)
        except (struct.error, ValueError) as error:
            return self._error(ErrorCode.PARAMETER, f"malformed {op.name} body: {error}")

    def _op_hello(self, body: bytes) -> bytes:
        versions = set(body[1:1 + body[0]]) if body else set()
        if 1 not in versions:
            offered = ", ".join(map(str, sorted(versions))) or "none"
            raise _DeviceError(ErrorCode.VERSION_UNSUPPORTED, f"host offers versions {offered}; device speaks 1")
        return bytes([1])

    def _op_ident(self, body: bytes) -> bytes:
        return self.identity.encode()

    def _op_caps(self, body: bytes) -> bytes:
        return self.caps.pack()

    def _op_status(self, body: bytes) -> bytes:
        mask = sum(1 << s for s in self.tiles if s < 32)
        return STATUS_BODY.pack(self.temperature, self.array.uptime, self.errors_total, mask)

    def _op_reset(self, body: bytes) -> bytes:
        self.tiles.clear()
        self.errors.clear()
        return b""

    def _op_error_pop(self, body: bytes) -> bytes:
        code, message = self.errors.pop(0) if self.errors else (0, "No error")
        return ERROR_HEAD.pack(code) + message.encode()

    def _op_load(self, body: bytes) -> bytes:
        import crc32c

        slot, rows, cols = LOAD_HEAD.unpack_from(body)
        caps = self.caps
        if slot >= caps.slots:
            raise _DeviceError(ErrorCode.PARAMETER, f"slot {slot} out of range (device has {caps.slots})")
        if rows > caps.rows or cols > caps.cols:
            raise _DeviceError(ErrorCode.TOO_LARGE, f"tile {rows}×{cols} exceeds {caps.rows}×{caps.cols}")
        data = body[LOAD_HEAD.size:]
        codes = unpack_codes(data, (rows, cols))
        if np.abs(codes.astype(np.int32)).max(initial=0) > caps.dac_max:
            raise _DeviceError(ErrorCode.DATA_OUT_OF_RANGE, f"weight codes exceed ±{caps.dac_max}")
        self.tiles[slot] = codes
        return struct.pack("<I", crc32c.crc32c(pack_codes(codes)))

    def _op_run(self, body: bytes) -> bytes:
        slot, batch, repeats = RUN_HEAD.unpack_from(body)
        caps = self.caps
        if slot not in self.tiles:
            raise _DeviceError(ErrorCode.TILE_EMPTY, f"slot {slot} holds no tile; LOAD it first")
        if not 1 <= batch <= caps.max_batch or not 1 <= repeats <= caps.max_repeats:
            raise _DeviceError(ErrorCode.TOO_LARGE, f"batch {batch} × repeats {repeats} outside "
                                                    f"1..{caps.max_batch} × 1..{caps.max_repeats}")
        tile = self.tiles[slot]
        rows, cols = tile.shape
        x = unpack_codes(body[RUN_HEAD.size:], (batch, rows))
        if np.abs(x.astype(np.int32)).max(initial=0) > caps.dac_max:
            raise _DeviceError(ErrorCode.DATA_OUT_OF_RANGE, f"input codes exceed ±{caps.dac_max}")
        if (repeats * batch * cols + 64) * 2 > caps.max_frame:
            raise _DeviceError(ErrorCode.TOO_LARGE, "reply would exceed max_frame; send fewer vectors")
        codes, saturated, temperature = self.array.run(tile, x, repeats)
        return RunReply(codes, saturated, temperature, self.array.uptime).pack()


class _DeviceError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _cobs_payload(encoded: bytes) -> bytes:
    from cobs import cobs

    try:
        return cobs.decode(encoded)
    except cobs.DecodeError:
        return b"\x00" * 8
