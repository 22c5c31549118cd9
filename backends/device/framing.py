"""AMVM/1 binary framing: COBS(header ‖ body ‖ CRC32C) ‖ 0x00 (see docs/protocol.md).

A packet is a 12-byte little-endian header, the body, and the CRC32C (Castagnoli) of header and
body. COBS removes every zero byte, so 0x00 delimits frames on a byte stream and a receiver that
lost sync discards bytes up to the next 0x00. Decoding checks, in order: COBS structure, minimum
length, CRC, version, declared body length — each failure is a `FrameError` naming what broke.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import crc32c
from cobs import cobs

from hil.errors import FrameError

VERSION = 1
HEADER = struct.Struct("<BBHBBhI")
"""version u8, type u8, seq u16, op u8, flags u8, status i16, body length u32."""
CRC = struct.Struct("<I")
DELIMITER = b"\x00"


class FrameType(IntEnum):
    """What a frame is."""

    REQUEST = 1
    RESPONSE = 2
    ERROR = 3




@dataclass(frozen=True)
class Frame:
    """One decoded packet.

    Attributes:
        type: Request, response or error.
        seq: Sequence number (wraps at 2¹⁶); a response carries its request's.
        op: Operation code (`hil.backends.device.protocol.Op`).
        body: Payload bytes.
        status: 0, or the error code of an ERROR frame.
        flags: Bit 0 = this request is a retry (the device may answer from its reply cache).
        version: Protocol version of the sender.
    """

    type: FrameType
    seq: int
    op: int
    body: bytes = b""
    status: int = 0
    flags: int = 0
    version: int = VERSION

    def encode(self) -> bytes:
        """The frame as it goes on the wire, delimiter included."""
        header = HEADER.pack(self.version, int(self.type), self.seq & 0xFFFF, self.op, self.flags, self.status,
                             len(self.body))
        packet = header + self.body
        return cobs.encode(packet + CRC.pack(crc32c.crc32c(packet))) + DELIMITER


_warned_slow_codec = False


def cobs_is_native() -> bool:
    """True when ``cobs`` runs its C extension (pure Python is ~36× slower on large frames)."""
    return bool(getattr(cobs, "_using_extension", False))


def warn_if_pure_python_cobs() -> None:
    """Warn once per process when ``cobs`` fell back to pure Python (a 640 KB frame: 56 ms instead of 1.5 ms)."""
    global _warned_slow_codec
    if _warned_slow_codec or cobs_is_native():
        return
    _warned_slow_codec = True
    import warnings

    warnings.warn("cobs runs its pure-Python fallback (no C extension was built): device links encode about 36× "
                  "slower; see hil doctor for the fix", RuntimeWarning, stacklevel=3)


def decode_frame(encoded: bytes) -> Frame:
    """Decode one frame (without its 0x00 delimiter).

    Raises:
        FrameError: COBS, length, CRC, version or body-length check failed.
    """
    try:
        packet = cobs.decode(encoded)
    except cobs.DecodeError as error:
        raise FrameError(f"corrupt frame (COBS: {error})") from None
    if len(packet) < HEADER.size + CRC.size:
        raise FrameError(f"truncated frame ({len(packet)} bytes, need ≥ {HEADER.size + CRC.size})")
    content, (crc,) = packet[:-CRC.size], CRC.unpack(packet[-CRC.size:])
    if crc32c.crc32c(content) != crc:
        raise FrameError("corrupt frame (CRC32C mismatch)")
    version, kind, seq, op, flags, status, length = HEADER.unpack_from(content)
    if version != VERSION:
        raise FrameError(f"peer speaks protocol version {version}; this hil speaks AMVM/{VERSION}")
    body = content[HEADER.size:]
    if len(body) != length:
        raise FrameError(f"frame body is {len(body)} bytes but the header says {length}")
    try:
        frame_type = FrameType(kind)
    except ValueError:
        raise FrameError(f"unknown frame type {kind}") from None
    return Frame(frame_type, seq, op, body, status, flags, version)


def encoded_limit(max_frame: int) -> int:
    """Most bytes a COBS-encoded frame with a body of ≤ ``max_frame`` bytes takes on the wire (no delimiter)."""
    packet = HEADER.size + max_frame + CRC.size
    return packet + packet // 254 + 2


DEFAULT_ENCODED_LIMIT = encoded_limit(1 << 20)
"""Before a peer's limits are known (HELLO, IDENT, CAPS): frames of up to 1 MiB."""


class FrameReader:
    """Splits a byte stream into frames at 0x00 delimiters, holding at most ``limit`` bytes of one frame.

    A frame that grows past ``limit`` before its delimiter is dropped as it arrives (its bytes are
    never held) up to the next delimiter; `oversized` counts such frames, and each one shows up in
    ``feed``'s result as `OVERSIZED` so the receiver can answer it.

    Args:
        limit: Largest encoded frame kept (see `encoded_limit`).
    """

    def __init__(self, limit: int = DEFAULT_ENCODED_LIMIT) -> None:
        self.limit = limit
        self.oversized = 0
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no delimiter
        self._dropping = False  # inside an oversized frame: discard up to its delimiter

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete encoded frames (delimiters stripped)."""
        frames: list[bytes] = []
        if self._dropping:
            end = data.find(0)
            if end < 0:
                return frames
            self._dropping = False
            data = data[end + 1:]
        self._buffer += data
        start = 0
        while True:
            end = self._buffer.find(0, max(start, self._scanned))
            if end < 0:
                break
            if end - start > self.limit:
                self.oversized += 1
                frames.append(OVERSIZED)
            elif end > start:
                frames.append(bytes(self._buffer[start:end]))
            start = end + 1
            self._scanned = start
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if len(self._buffer) > self.limit:  # no delimiter in sight: stop holding it
            self.oversized += 1
            frames.append(OVERSIZED)
            self.clear()
            self._dropping = True
        return frames

    def clear(self) -> None:
        """Drop partial data (after a timeout: resynchronise at the next delimiter)."""
        self._buffer.clear()
        self._scanned = 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)


OVERSIZED = b""
"""What `FrameReader.feed` returns in place of a frame larger than its limit (never a real frame: empty)."""
