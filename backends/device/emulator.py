"""A device emulator that speaks AMVM/1: the hidden analog model, the request handler, faults.

The model (per column c of a tile, codes normalised to ±1)::

    z_c  = Σ_r w[r, c] · x[r]                                  exact dot product
    z'_c = g_c · z_c · (1 + σm ε1) + o_c + σa ε2                mul-first (or add-first)
    code = clip(round(z'_c / full_scale · adc_max), ±adc_max)   ADC; clipped = saturated

with hidden per-column gain g_c ~ 1 + N(0, gain_spread²), offset o_c ~ N(0, offset_spread²) drawn
from the seed at power-up, and a temperature that drifts slowly with use (σa grows by
``drift_per_kelvin`` per kelvin above 25 °C). `DeviceEmulator.handle` turns one request frame into
one reply frame; `FaultInjector` corrupts the reply stream on the way out; `serve_stream` runs a
byte-stream loop over a pty or a socket (see `hil device emulate`).
"""

from __future__ import annotations

import math
import os
import random
import select
import struct
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from hil.backends.device.framing import Frame, FrameError, FrameReader, FrameType, decode_frame
from hil.backends.device.protocol import (
    ERROR_HEAD,
    LOAD_HEAD,
    RUN_HEAD,
    STATUS_BODY,
    Capabilities,
    ErrorCode,
    Op,
    RunReply,
    pack_codes,
    unpack_codes,
)
from hil.errors import ConfigError

IDENTITY = "hil,AMVM emulator,EMU-0001,{version}"
REPLY_CACHE = 64
"""Replies kept by sequence number, so a retried request is answered without running twice."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Hidden truth and geometry of an emulated device (TOML keys have the same names).

    Attributes:
        sigma_add: σa, in normalised dot-product units.
        sigma_mul: σm (relative).
        order: ``mul-first`` or ``add-first``.
        seed: Seed of gains, offsets and noise.
        rows: Tile rows.
        cols: Tile columns.
        slots: Tiles held at once.
        dac_bits: Weight/input code resolution.
        adc_bits: Output code resolution.
        full_scale: Dot product mapped to the largest ADC code.
        max_batch: Vectors per RUN.
        max_repeats: Repeats per RUN.
        max_frame: Largest frame body, bytes.
        gain_spread: Std of the per-column gain around 1.
        offset_spread: Std of the per-column offset.
        drift_per_kelvin: Relative σa increase per kelvin above 25 °C.
        offset_drift: Offset change per kelvin above 25 °C (dot-product units).
        heating: Kelvin gained per million MACs (cools back with a 10 s time constant).
    """

    sigma_add: float = 0.0
    sigma_mul: float = 0.0
    order: str = "mul-first"
    seed: int = 0
    rows: int = 256
    cols: int = 64
    slots: int = 16
    dac_bits: int = 8
    adc_bits: int = 12
    full_scale: float = 16.0
    max_batch: int = 1024
    max_repeats: int = 64
    max_frame: int = 4 << 20
    gain_spread: float = 0.0
    offset_spread: float = 0.0
    drift_per_kelvin: float = 0.0
    offset_drift: float = 0.0
    heating: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sigma_add", "sigma_mul", "gain_spread", "offset_spread", "drift_per_kelvin", "offset_drift",
                     "heating"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"device {name} must be a number ≥ 0, got {value!r}")
        if self.order not in ("mul-first", "add-first"):
            raise ConfigError(f"device order must be mul-first or add-first, got {self.order!r}")
        limits = {"rows": (1, 65535), "cols": (1, 65535), "slots": (1, 255), "dac_bits": (2, 16),
                  "adc_bits": (2, 16), "max_batch": (1, 65535), "max_repeats": (1, 65535),
                  "max_frame": (1024, 1 << 30)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"device {name} must be an integer in [{low}, {high}], got {value!r}")
        if not (math.isfinite(self.full_scale) and self.full_scale > 0):
            raise ConfigError(f"device full_scale must be > 0, got {self.full_scale!r}")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> EmulatorConfig:
        """Read a device file (``[device]`` table or top level); ``overrides`` win.

        Raises:
            ConfigError: Missing or unreadable file, unknown keys, bad values.
        """
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"device file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read device file {path}: {error}") from None
        table = data.get("device", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; valid: {', '.join(sorted(known))}")
        return cls(**{**table, **{k: v for k, v in overrides.items() if v is not None}})

    def capabilities(self) -> Capabilities:
        """What the device reports in CAPS."""
        return Capabilities(self.rows, self.cols, self.slots, self.dac_bits, self.adc_bits, self.max_batch,
                            self.max_repeats, self.max_frame, self.full_scale)


class DeviceEmulator:
    """The device side of AMVM/1: one request frame in, one reply frame out."""

    def __init__(self, config: EmulatorConfig) -> None:
        from hil._version import __version__

        self.config = config
        self.caps = config.capabilities()
        self.identity = IDENTITY.format(version=__version__)
        self.rng = np.random.default_rng(config.seed)
        gains = 1.0 + config.gain_spread * self.rng.standard_normal(config.cols)
        self.gain = gains.astype(np.float64)
        self.offset = config.offset_spread * self.rng.standard_normal(config.cols)
        self.tiles: dict[int, np.ndarray] = {}
        self.errors: list[tuple[int, str]] = []
        self.errors_total = 0
        self.replies: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.started = time.monotonic()
        self.heat = 0.0
        self.last_use = time.monotonic()
        self.executions = 0

    # -- state -----------------------------------------------------------------------------

    @property
    def temperature(self) -> float:
        """Device temperature, °C (heats with use, cools with a 10 s time constant)."""
        now = time.monotonic()
        self.heat *= math.exp(-(now - self.last_use) / 10.0)
        self.last_use = now
        return 25.0 + self.heat

    def _error(self, code: ErrorCode, message: str) -> tuple[int, bytes]:
        if len(self.errors) < 32:
            self.errors.append((int(code), message))
        self.errors_total += 1
        return int(code), message.encode()

    # -- requests --------------------------------------------------------------------------

    def handle(self, encoded: bytes) -> bytes | None:
        """Reply (wire bytes) to one received frame (without delimiter); None to stay silent.

        Corrupt frames are answered with nothing: the host times out and retries. A retried
        request (same sequence number, operation and body) is answered from the reply cache
        without running again; HELLO starts a new session and empties the cache.
        """
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
        return STATUS_BODY.pack(self.temperature, time.monotonic() - self.started, self.errors_total, mask)

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
        # integer dot products are exact in float32 while rows·dac_max² < 2²⁴ (8-bit codes: rows ≤ 1040)
        exact32 = rows * caps.dac_max**2 < 2**24
        kind = np.float32 if exact32 else np.float64
        z = (x.astype(kind) @ tile.astype(kind)).astype(np.float64) / caps.dac_max**2  # (batch, cols)
        temperature = self.temperature
        sigma_add = self.config.sigma_add * (1 + self.config.drift_per_kelvin * max(temperature - 25.0, 0.0))
        gain = self.gain[:cols]
        offset = self.offset[:cols] + self.config.offset_drift * max(temperature - 25.0, 0.0)
        shape = (repeats, batch, cols)
        signal = np.broadcast_to(z * gain, shape)
        mul = 1.0 + self.config.sigma_mul * self.rng.standard_normal(shape) if self.config.sigma_mul else 1.0
        add = sigma_add * self.rng.standard_normal(shape) if sigma_add else 0.0
        if self.config.order == "mul-first":
            analog = signal * mul + offset + add
        else:
            analog = (signal + offset + add) * mul
        ideal = np.rint(analog / caps.full_scale * caps.adc_max)
        clipped = np.abs(ideal) > caps.adc_max
        codes = np.clip(ideal, -caps.adc_max, caps.adc_max).astype(np.int16)
        self.executions += repeats * batch
        self.heat += self.config.heating * repeats * batch * rows * cols / 1e6
        reply = RunReply(codes, clipped.any(axis=(0, 2)), temperature, time.monotonic() - self.started)
        return reply.pack()


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


# -- faults ----------------------------------------------------------------------------------

FAULT_KINDS = ("drop", "flip", "delay", "truncate", "late", "disconnect")


@dataclass(frozen=True)
class Faults:
    """Fault rates applied to reply frames (each in [0, 1]); ``delay_s`` for delay and late.

    drop: reply never sent; flip: one bit flipped; truncate: reply cut short (delimiter kept);
    delay: reply sent after ``delay_s`` (within the host timeout); late: sent after ``late_s``
    (past the host timeout — the host has retried by then); disconnect: the link closes.
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

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """From ``drop=0.01,flip=0.01,delay_s=0.02``.

        Raises:
            ConfigError: Unknown fault or a rate outside [0, 1].
        """
        if not text:
            return cls()
        values: dict[str, float] = {}
        for item in text.split(","):
            key, eq, value = item.strip().partition("=")
            if not eq or key not in {f.name for f in fields(cls)}:
                raise ConfigError(f"bad fault {item!r}; use KIND=RATE with KIND in {', '.join(FAULT_KINDS)} "
                                  f"(and delay_s, late_s, seed)")
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"fault {key} needs a number, got {value!r}") from None
            if key in FAULT_KINDS and not 0 <= number <= 1:
                raise ConfigError(f"fault rate {key}={number} must be in [0, 1]")
            values[key] = int(number) if key == "seed" else number
        return cls(**values)

    @property
    def any(self) -> bool:
        """True when some fault has a non-zero rate."""
        return any(getattr(self, k) > 0 for k in FAULT_KINDS)


class FaultInjector:
    """Decides, per reply, which fault (if any) hits it; counts what it did."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.random = random.Random(faults.seed)
        self.counts = dict.fromkeys(FAULT_KINDS, 0)

    def apply(self, reply: bytes) -> tuple[bytes | None, float, bool]:
        """(bytes to send or None, seconds to wait first, close the link afterwards)."""
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


# -- serving ---------------------------------------------------------------------------------

def serve_stream(emulator: DeviceEmulator, read_fd: int, write_fd: int, faults: Faults | None = None,
                 stop: Any = None, framing: str = "binary") -> str:
    """Serve requests on file descriptors until EOF, a disconnect fault or ``stop()``.

    ``framing`` is ``binary`` (AMVM/1 frames; faults apply to replies) or ``scpi`` (text
    commands with IEEE-488.2 blocks, `hil.backends.device.scpi`; no faults).

    Returns why it stopped: ``"eof"``, ``"disconnect"`` or ``"stopped"``.
    """
    reader = FrameReader()
    injector = FaultInjector(faults or Faults())
    scpi = None
    if framing == "scpi":
        from hil.backends.device.scpi import ScpiSession

        scpi = ScpiSession(emulator)
    pending: list[tuple[float, bytes]] = []  # late replies: (send at, bytes)
    while stop is None or not stop():
        timeout = 0.05 if not pending else max(0.0, min(t for t, _ in pending) - time.monotonic())
        ready, _, _ = select.select([read_fd], [], [], timeout)
        now = time.monotonic()
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            _write_all(write_fd, item[1])
        if not ready:
            continue
        try:
            data = os.read(read_fd, 1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            return "eof"
        if not data:
            return "eof"
        if scpi is not None:
            for reply in scpi.feed(data):
                _write_all(write_fd, reply)
            continue
        for encoded in reader.feed(data):
            reply = emulator.handle(encoded)
            if reply is None:
                continue
            out, wait, close = injector.apply(reply)
            if close:
                return "disconnect"
            if out is None:
                continue
            if wait > 0:
                pending.append((time.monotonic() + wait, out))
            else:
                _write_all(write_fd, out)
    return "stopped"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


def with_overrides(config: EmulatorConfig, **values: Any) -> EmulatorConfig:
    """``config`` with the non-None ``values`` replaced."""
    return replace(config, **{k: v for k, v in values.items() if v is not None})


class LoopbackTransport:
    """An in-process `Transport` to an emulator, with the same fault injection (tests, notebooks).

    Replies hit by a ``late`` fault are delivered after the next request is written (the host
    has timed out by then); ``delay`` faults are delivered at once.
    """

    def __init__(self, emulator: DeviceEmulator, faults: Faults | None = None) -> None:
        self.description = "loopback"
        self.emulator = emulator
        self.injector = FaultInjector(faults or Faults())
        self._reader = FrameReader()
        self._inbox = b""
        self._late: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        from hil.backends.device.transport import DeviceError

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
        from hil.backends.device.transport import DeviceError

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
