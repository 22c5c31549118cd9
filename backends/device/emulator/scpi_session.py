"""The device side of the SCPI framing: parse commands (blocks may hold any byte), answer from an emulator.

The command set is in `hil.backends.device.scpi` (host side) and docs/protocol.md §8.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from hil.backends.device.protocol import (
    ERROR_HEAD,
    LOAD_HEAD,
    PROTOCOL,
    RUN_HEAD,
    STATUS_BODY,
    Op,
    RunReply,
    ieee_block,
    pack_codes,
)


class ScpiSession:
    """The device side of the SCPI framing for one byte stream.

    Every malformed command queues an SCPI error (−1xx/−2xx) and the session goes on; nothing in
    the stream can make it hold more than ``max_frame`` bytes of one command: a longer line or a
    block declared longer is queued as −223 "too much data" and its bytes are dropped as they come.
    """

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.limit = int(emulator.caps.max_frame)
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized block still to drop
        self._skip_line = False  # dropping an oversized line up to its newline

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the replies to every complete command."""
        data = self._dropped(data)
        self._buffer += data
        replies: list[bytes] = []
        while True:
            command = self._next_command()
            if command is None:
                break
            reply = self._answer(*command)
            if reply is not None:
                replies.append(reply + b"\n")
        if len(self._buffer) > self.limit:  # a line with no end in sight
            self._too_much(f"a command of more than {self.limit} bytes")
            self._buffer.clear()
            self._skip_line = True
        return replies

    def _dropped(self, data: bytes) -> bytes:
        """``data`` without the bytes of an oversized block or line being dropped."""
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        if self._skip_line and data:
            newline = data.find(b"\n")
            if newline < 0:
                return b""
            self._skip_line = False
            data = data[newline + 1:]
        return data

    def _too_much(self, what: str) -> None:
        self._queue(-223, f"too much data: {what} (max_frame {self.limit})")

    def _next_command(self) -> tuple[str, bytes | None] | None:
        newline = self._buffer.find(b"\n")
        hash_at = self._buffer.find(b"#")
        if hash_at >= 0 and (newline < 0 or hash_at < newline) and len(self._buffer) > hash_at + 1:
            digits = self._buffer[hash_at + 1] - 48
            if not 1 <= digits <= 9:
                return self._discard_line(newline, "block header needs a digit count 1-9 after '#'")
            if len(self._buffer) < hash_at + 2 + digits:
                return None
            count = bytes(self._buffer[hash_at + 2:hash_at + 2 + digits])
            if not count.isdigit():
                return self._discard_line(newline, f"block length {count!r} is not {digits} decimal digits")
            length = int(count)
            end = hash_at + 2 + digits + length
            if length > self.limit:
                self._too_much(f"a block of {length} bytes")
                self._skip = max(0, end + 1 - len(self._buffer))
                del self._buffer[:end + 1]
                return "", None
            if len(self._buffer) < end + 1:
                return None
            text = self._buffer[:hash_at].decode(errors="replace")
            block = bytes(self._buffer[hash_at + 2 + digits:end])
            del self._buffer[:end + 1]  # the terminator after the block
            return text.strip(), block
        if newline < 0:
            return None
        text = self._buffer[:newline].decode(errors="replace")
        del self._buffer[:newline + 1]
        return text.strip(), None

    def _discard_line(self, newline: int, error: str) -> tuple[str, bytes | None]:
        """Drop a command whose block header is malformed (−104 data type error), up to its newline."""
        self._queue(-104, error)
        if newline < 0:
            self._buffer.clear()
            self._skip_line = True
            return "", None
        del self._buffer[:newline + 1]
        return "", None

    def _binary(self, op: Op, body: bytes) -> bytes | None:
        """Run an operation on the emulator; None after it queued an error."""
        status, reply = self.emulator.run_operation(int(op), body)
        return None if status else reply

    def _answer(self, text: str, block: bytes | None) -> bytes | None:
        header, _, arguments = text.partition(" ")
        header = header.upper()
        args = [a for a in arguments.split(",") if a.strip()] if arguments else []
        try:
            if header == "*IDN?":
                return self.emulator.identity.encode()
            if header == "*RST":
                self._binary(Op.RESET, b"")
                return None
            if header == "*CLS":
                self.emulator.errors.clear()
                return None
            if header in ("SYST:ERR?", "SYSTEM:ERROR?"):
                body = self._binary(Op.ERROR_POP, b"") or ERROR_HEAD.pack(0) + b"No error"
                (code,) = ERROR_HEAD.unpack_from(body)
                return f'{code},"{body[ERROR_HEAD.size:].decode()}"'.encode()
            if header == "AMVM:PROT?":
                return PROTOCOL.encode()
            if header == "AMVM:CAP?":
                caps = self.emulator.caps
                return ",".join(str(v) for v in caps.to_dict().values()).encode()
            if header == "AMVM:STAT?":
                body = self._binary(Op.STATUS, b"")
                return None if body is None else ",".join(map(str, STATUS_BODY.unpack(body))).encode()
            if header == "AMVM:LOAD?" and block is not None:
                slot, rows, cols = (int(a) for a in args[:3])
                body = self._binary(Op.LOAD, LOAD_HEAD.pack(slot, rows, cols) + block)
                return None if body is None else str(struct.unpack("<I", body)[0]).encode()
            if header == "AMVM:RUN?" and block is not None:
                slot, batch, repeats = (int(a) for a in args[:3])
                body = self._binary(Op.RUN, RUN_HEAD.pack(slot, batch, repeats) + block)
                return None if body is None else ieee_block(body)
            if header == "AMVM:RUNA?":
                slot, repeats = int(args[0]), int(args[1])
                vector = np.array([int(a) for a in args[2:]], dtype=np.int16)
                body = self._binary(Op.RUN, RUN_HEAD.pack(slot, 1, repeats) + pack_codes(vector))
                if body is None:
                    return None
                reply = RunReply.unpack(body)
                return (f"{int(reply.saturated[0])}," + ",".join(map(str, reply.codes.ravel().tolist()))).encode()
        except (ValueError, IndexError, OverflowError, struct.error) as error:
            self._queue(-220, f"parameter error in {header[:40]}: {str(error)[:200]}")
            return None
        if header:  # an empty one is a blank line or a dropped command (its error is queued already)
            self._queue(-100, f"undefined header {header[:40]!r}")
        return None

    def _queue(self, code: int, message: str) -> None:
        self.emulator.queue_error(code, message)
