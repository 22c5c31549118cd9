"""Fault injection on the emulator's reply stream: drops, bit flips, truncation, delay, late replies, disconnects."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

from hil.errors import ConfigError

FAULT_KINDS = ("drop", "flip", "delay", "truncate", "late", "disconnect")


@dataclass(frozen=True)
class Faults:
    """Fault rates applied to reply frames (each in [0, 1]); ``delay_s`` for delay and late.

    drop: reply never sent; flip: one bit flipped; truncate: reply cut short (delimiter kept);
    delay: reply sent after ``delay_s`` (within the host timeout); late: sent after ``late_s``
    (past the host timeout — the host has retried by then); disconnect: the link closes.
    ``die_after``: after that many replies the device dies (the link closes and the emulator stops
    serving, as a chip that loses power mid-run); 0 never.
    """

    drop: float = 0.0
    flip: float = 0.0
    delay: float = 0.0
    truncate: float = 0.0
    late: float = 0.0
    disconnect: float = 0.0
    delay_s: float = 0.01
    late_s: float = 0.5
    seed: int = 0
    die_after: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """From ``drop=0.01,flip=0.01,delay_s=0.02``.

        Raises:
            ConfigError: Unknown fault or a rate outside [0, 1].
        """
        if not text:
            return cls()
        values: dict[str, Any] = {}
        for item in text.split(","):
            key, eq, value = item.strip().partition("=")
            if not eq or key not in {f.name for f in fields(cls)}:
                raise ConfigError(f"bad fault {item!r}; use KIND=RATE with KIND in {', '.join(FAULT_KINDS)} "
                                  f"(and delay_s, late_s, seed, die_after)")
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"fault {key} needs a number, got {value!r}") from None
            if key in FAULT_KINDS and not 0 <= number <= 1:
                raise ConfigError(f"fault rate {key}={number} must be in [0, 1]")
            if key in ("seed", "die_after"):
                if number < 0 or number != int(number):
                    raise ConfigError(f"fault {key} needs a whole number ≥ 0, got {value!r}")
                values[key] = int(number)
            else:
                values[key] = number
        return cls(**values)

    @property
    def any(self) -> bool:
        """True when some fault has a non-zero rate."""
        return self.die_after > 0 or any(getattr(self, k) > 0 for k in FAULT_KINDS)


class FaultInjector:
    """Decides, per reply, which fault (if any) hits it; counts what it did."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.random = random.Random(faults.seed)
        self.counts = dict.fromkeys(FAULT_KINDS, 0)
        self.replies = 0

    @property
    def dead(self) -> bool:
        """True once ``die_after`` replies have been sent: every later request closes the link."""
        return 0 < self.faults.die_after <= self.replies

    def apply(self, reply: bytes) -> tuple[bytes | None, float, bool]:
        """(bytes to send or None, seconds to wait first, close the link afterwards)."""
        if self.dead:
            return None, 0.0, True
        self.replies += 1
        roll = self.random.random()
        for kind in FAULT_KINDS:
            rate = getattr(self.faults, kind)
            if roll < rate:
                self.counts[kind] += 1
                return self._hit(kind, reply)
            roll -= rate
        return reply, 0.0, False

    def _hit(self, kind: str, reply: bytes) -> tuple[bytes | None, float, bool]:
        if kind == "drop":
            return None, 0.0, False
        if kind == "flip":
            data = bytearray(reply)
            index = self.random.randrange(len(data) - 1)  # never the delimiter
            data[index] ^= 1 << self.random.randrange(8)
            return bytes(data), 0.0, False
        if kind == "truncate":
            cut = self.random.randrange(1, len(reply) - 1) if len(reply) > 2 else 1
            return reply[:cut] + b"\x00", 0.0, False
        if kind == "delay":
            return reply, self.faults.delay_s, False
        if kind == "late":
            return reply, self.faults.late_s, False
        return None, 0.0, True
