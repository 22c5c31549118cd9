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
    """The device side of the SCPI framing for one byte stream."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the replies to every complete command."""
        self._buffer += data
        replies: list[bytes] = []
        while True:
            command = self._next_command()
            if command is None:
                return replies
            reply = self._answer(*command)
            if reply is not None:
                replies.append(reply + b"\n")

    def _next_command(self) -> tuple[str, bytes | None] | None:
        newline = self._buffer.find(b"\n")
        hash_at = self._buffer.find(b"#")
        if hash_at >= 0 and (newline < 0 or hash_at < newline) and len(self._buffer) > hash_at + 1:
            digits = self._buffer[hash_at + 1] - 48
            if not 1 <= digits <= 9:
                return self._discard_line(newline)
            if len(self._buffer) < hash_at + 2 + digits:
                return None
            length = int(self._buffer[hash_at + 2:hash_at + 2 + digits])
            end = hash_at + 2 + digits + length
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

    def _discard_line(self, newline: int) -> tuple[str, bytes | None] | None:
        if newline < 0:
            return None
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
        except (ValueError, IndexError, struct.error) as error:
            self.emulator.errors.append((-220, f"parameter error in {header}: {error}"))
            return None
        self.emulator.errors.append((-100, f"undefined header {header!r}"))
        return None
