"""AMVM/1 operations and message bodies, shared by the host driver and the emulator.

Every body is little-endian. Arrays are int16 codes, row-major. See docs/protocol.md.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import TypeVar

import numpy as np

PROTOCOL = "AMVM/1"


class Op(IntEnum):
    """Operation codes."""

    HELLO = 0x01
    IDENT = 0x02
    CAPS = 0x03
    LOAD = 0x10
    RUN = 0x11
    STATUS = 0x20
    RESET = 0x21
    ERROR_POP = 0x22


class ErrorCode(IntEnum):
    """Device error codes (SCPI-style: negative = command errors, 1xxx = device-specific)."""

    NO_ERROR = 0
    COMMAND = -100
    PARAMETER = -220
    DATA_OUT_OF_RANGE = -222
    QUEUE_OVERFLOW = -350
    TILE_EMPTY = 1001
    ADC_SATURATED = 1002
    CRC_MISMATCH = 1003
    OVER_TEMPERATURE = 1004
    FRAME_CORRUPT = 1005
    VERSION_UNSUPPORTED = 1010
    TOO_LARGE = 1011


T = TypeVar("T")

CAPABILITY_LIMITS = {"rows": (1, 65535), "cols": (1, 65535), "slots": (1, 255), "dac_bits": (2, 16),
                     "adc_bits": (2, 16), "max_batch": (1, 65535), "max_repeats": (1, 65535),
                     "max_frame": (1024, 1 << 30)}
"""Inclusive range of every integer capability (what the wire format and a sane device allow)."""

CAPS = struct.Struct("<HHBBBHHIf")
LOAD_HEAD = struct.Struct("<BHH")
RUN_HEAD = struct.Struct("<BHH")
RUN_REPLY_HEAD = struct.Struct("<fdI")
STATUS_BODY = struct.Struct("<fdII")
ERROR_HEAD = struct.Struct("<h")


@dataclass(frozen=True)
class Capabilities:
    """What a device can do (reply to CAPS).

    Attributes:
        rows: Tile rows (inputs per column).
        cols: Tile columns (outputs).
        slots: Tiles the device holds at once.
        dac_bits: Signed resolution of weight and input codes (codes in ±(2^(bits−1) − 1)).
        adc_bits: Signed resolution of output codes.
        max_batch: Vectors per RUN.
        max_repeats: Repeats per RUN.
        max_frame: Largest frame body the device accepts or sends, in bytes.
        full_scale: Dot product (of codes normalised to ±1) that maps to the largest ADC code.
    """

    rows: int
    cols: int
    slots: int
    dac_bits: int
    adc_bits: int
    max_batch: int
    max_repeats: int
    max_frame: int
    full_scale: float

    def __post_init__(self) -> None:
        for name, (low, high) in CAPABILITY_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"capability {name} = {value!r} is outside [{low}, {high}]")
        if not (isinstance(self.full_scale, int | float) and math.isfinite(self.full_scale) and self.full_scale > 0):
            raise ValueError(f"capability full_scale = {self.full_scale!r} is not a number > 0")

    @property
    def dac_max(self) -> int:
        """Largest weight/input code."""
        return (1 << (self.dac_bits - 1)) - 1

    @property
    def adc_max(self) -> int:
        """Largest output code."""
        return (1 << (self.adc_bits - 1)) - 1

    def pack(self) -> bytes:
        """CAPS reply body."""
        return CAPS.pack(self.rows, self.cols, self.slots, self.dac_bits, self.adc_bits, self.max_batch,
                         self.max_repeats, self.max_frame, self.full_scale)

    @classmethod
    def unpack(cls, body: bytes) -> Capabilities:
        """From a CAPS reply body."""
        return cls(*CAPS.unpack(body[:CAPS.size]))

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return asdict(self)


def pack_codes(codes: np.ndarray) -> bytes:
    """int16 little-endian bytes of an integer array."""
    return np.ascontiguousarray(codes, dtype="<i2").tobytes()


def unpack_codes(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """int16 array of ``shape`` from bytes (raises ValueError on a size mismatch)."""
    expected = int(np.prod(shape)) * 2
    if len(data) != expected:
        raise ValueError(f"expected {expected} bytes of int16 codes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").reshape(shape).astype(np.int16)


@dataclass(frozen=True)
class RunReply:
    """Reply to RUN.

    Attributes:
        codes: ADC codes, shape (repeats, batch, cols).
        saturated: Per vector, True when any of its outputs (any repeat) hit the ADC limit.
        temperature: Device temperature, °C.
        timestamp: Device clock, seconds.
    """

    codes: np.ndarray
    saturated: np.ndarray
    temperature: float
    timestamp: float

    def pack(self) -> bytes:
        """RUN reply body."""
        repeats, batch, cols = self.codes.shape
        head = RUN_REPLY_HEAD.pack(self.temperature, self.timestamp, repeats << 16 | batch)
        return head + np.packbits(self.saturated.astype(bool)).tobytes() + struct.pack("<H", cols) + \
            pack_codes(self.codes)

    def check(self, batch: int, repeats: int) -> RunReply:
        """This reply when it answers a RUN of ``batch`` vectors × ``repeats``, else ValueError."""
        expected = (repeats, batch)
        if self.codes.shape[:2] != expected or len(self.saturated) != batch:
            raise ValueError(f"RUN reply holds codes of shape {self.codes.shape} for a request of {expected}")
        return self

    @classmethod
    def unpack(cls, body: bytes) -> RunReply:
        """From a RUN reply body (raises ValueError when sizes disagree)."""
        temperature, timestamp, shape = RUN_REPLY_HEAD.unpack_from(body)
        repeats, batch = shape >> 16, shape & 0xFFFF
        offset = RUN_REPLY_HEAD.size
        bitmap = (batch + 7) // 8
        saturated = np.unpackbits(np.frombuffer(body[offset:offset + bitmap], dtype=np.uint8))[:batch].astype(bool)
        offset += bitmap
        (cols,) = struct.unpack_from("<H", body, offset)
        codes = unpack_codes(body[offset + 2:], (repeats, batch, cols))
        return cls(codes, saturated, temperature, timestamp)


def parse_reply(description: str, what: str, parse: Callable[[], T]) -> T:
    """``parse()`` of a device's reply, or a `DeviceError` naming what was malformed: the one place host code
    turns a peer's bad bytes (short bodies, wrong shapes, impossible capabilities, non-numbers) into an error."""
    from hil.errors import DeviceError

    try:
        return parse()
    except (ValueError, IndexError, struct.error, OverflowError, TypeError, UnicodeDecodeError) as error:
        raise DeviceError(f"{description} sent a malformed {what} reply ({str(error)[:160]}); is it an AMVM/1 "
                          f"device running a matching firmware?") from None


def ieee_block(data: bytes) -> bytes:
    """``#<n><len><data>`` (IEEE-488.2 definite-length arbitrary block, the SCPI framing's binary payload)."""
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + data
