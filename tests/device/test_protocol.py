"""AMVM/1 framing, the emulator's request handling, and the driver over an exact byte exchange."""

from __future__ import annotations

import numpy as np
import pytest

from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, Faults, LoopbackTransport
from hil.backends.device.framing import Frame, FrameError, FrameReader, FrameType, decode_frame
from hil.backends.device.protocol import Capabilities, ErrorCode, Op
from hil.backends.device.transport import DeviceError, FakeTransport
from hil.errors import ConfigError


def test_frames_round_trip_and_contain_no_zero_before_the_delimiter() -> None:
    frame = Frame(FrameType.RESPONSE, 513, int(Op.RUN), bytes(range(256)) * 3, status=0, flags=1)
    wire = frame.encode()
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    assert decode_frame(wire[:-1]) == frame


def test_every_single_bit_flip_and_every_truncation_is_detected() -> None:
    wire = Frame(FrameType.REQUEST, 7, int(Op.LOAD), bytes(range(40))).encode()[:-1]
    for index in range(len(wire)):
        for bit in range(8):
            corrupt = bytearray(wire)
            corrupt[index] ^= 1 << bit
            if 0 in corrupt:  # a flip to 0x00 splits the frame: the reader sees two short pieces
                pieces = [p for p in bytes(corrupt).split(b"\x00") if p]
            else:
                pieces = [bytes(corrupt)]
            for piece in pieces:
                with pytest.raises(FrameError):
                    decode_frame(piece)
    for cut in range(1, len(wire)):
        with pytest.raises(FrameError):
            decode_frame(wire[:cut])


def test_a_frame_of_another_version_is_named_as_such() -> None:
    wire = Frame(FrameType.REQUEST, 1, 1, b"", version=2).encode()[:-1]
    with pytest.raises(FrameError, match="version 2"):
        decode_frame(wire)


def test_reader_splits_a_stream_at_delimiters_across_chunks() -> None:
    frames = [Frame(FrameType.REQUEST, i, 2, bytes([i]) * i).encode() for i in range(1, 6)]
    stream = b"".join(frames)
    reader = FrameReader()
    found = []
    for start in range(0, len(stream), 3):
        found += reader.feed(stream[start:start + 3])
    assert [decode_frame(f).seq for f in found] == [1, 2, 3, 4, 5]
    assert reader.pending == 0


def _emulator(**kwargs: object) -> DeviceEmulator:
    return DeviceEmulator(EmulatorConfig(**kwargs))


def test_driver_handshake_is_exactly_the_documented_bytes() -> None:
    emulator = _emulator(rows=32, cols=8)
    caps = emulator.caps.pack()
    ident = emulator.identity.encode()
    exchange = [
        (Frame(FrameType.REQUEST, 1, Op.HELLO, bytes([1, 1])).encode(),
         Frame(FrameType.RESPONSE, 1, Op.HELLO, b"\x01").encode()),
        (Frame(FrameType.REQUEST, 2, Op.IDENT).encode(), Frame(FrameType.RESPONSE, 2, Op.IDENT, ident).encode()),
        (Frame(FrameType.REQUEST, 3, Op.CAPS).encode(), Frame(FrameType.RESPONSE, 3, Op.CAPS, caps).encode()),
    ]
    fake = FakeTransport(exchange)
    driver = AmvmDriver(fake, timeout=0.05)
    assert fake.finished
    assert driver.identity == emulator.identity
    assert driver.capabilities() == Capabilities.unpack(caps)


def test_emulator_computes_the_quantised_dot_product_without_noise() -> None:
    emulator = _emulator(rows=16, cols=4, adc_bits=16, full_scale=4.0)
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.05)
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(16, 4)).astype(np.int16)
    x = rng.integers(-127, 128, size=(5, 16)).astype(np.int16)
    driver.load_tile(0, w)
    reply = driver.run(0, x, repeats=3)
    expected = (x / 127.0) @ (w / 127.0) / 4.0 * 32767
    assert reply.codes.shape == (3, 5, 4)
    assert np.abs(reply.codes - np.rint(expected)).max() <= 1
    assert not reply.saturated.any()


def test_saturation_is_flagged_per_vector() -> None:
    emulator = _emulator(rows=8, cols=2, full_scale=1.0)
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.05)
    driver.load_tile(0, np.full((8, 2), 127, dtype=np.int16))
    x = np.array([[127] * 8, [1] * 8], dtype=np.int16)
    reply = driver.run(0, x, repeats=1)
    assert reply.saturated.tolist() == [True, False]
    assert reply.codes[0, 0, 0] == emulator.caps.adc_max


def test_a_retried_sequence_number_is_answered_from_the_cache() -> None:
    emulator = _emulator(rows=4, cols=2, sigma_add=0.1)
    driver = AmvmDriver(LoopbackTransport(emulator), timeout=0.05)
    driver.load_tile(0, np.ones((4, 2), dtype=np.int16))
    request = Frame(FrameType.REQUEST, 99, Op.RUN, bytes.fromhex("00") + (1).to_bytes(2, "little") +
                    (1).to_bytes(2, "little") + np.ones(4, dtype="<i2").tobytes()).encode()[:-1]
    first = emulator.handle(request)
    runs = emulator.executions
    again = emulator.handle(request)
    assert again == first and emulator.executions == runs


@pytest.mark.parametrize(("call", "code"), [
    (lambda d: d.run(3, np.zeros((1, 4), dtype=np.int16), 1), ErrorCode.TILE_EMPTY),
    (lambda d: d.load_tile(0, np.zeros((64, 2), dtype=np.int16)), ErrorCode.TOO_LARGE),
    (lambda d: d.load_tile(99, np.zeros((4, 2), dtype=np.int16)), ErrorCode.PARAMETER),
    (lambda d: d.load_tile(0, np.full((4, 2), 1000, dtype=np.int16)), ErrorCode.DATA_OUT_OF_RANGE),
])
def test_device_errors_become_one_line_errors_and_are_queued(call, code: ErrorCode) -> None:  # noqa: ANN001
    driver = AmvmDriver(LoopbackTransport(_emulator(rows=8, cols=2)), timeout=0.05)
    with pytest.raises(DeviceError, match=f"device error {int(code)}"):
        call(driver)
    assert driver.pop_error()[0] == int(code)
    assert driver.pop_error() == (0, "No error")


def test_dead_device_fails_within_the_timeout() -> None:
    import time

    class Silent(FakeTransport):
        def write(self, data: bytes) -> None:
            pass

        def read(self, timeout: float) -> bytes:
            time.sleep(timeout)
            return b""

    started = time.monotonic()
    with pytest.raises(DeviceError, match="did not answer HELLO within 0.05 s after 3 tries"):
        AmvmDriver(Silent([]), timeout=0.05, retries=2)
    assert time.monotonic() - started < 1.0


def test_garbage_answers_are_not_trusted() -> None:
    class Garbage(FakeTransport):
        def write(self, data: bytes) -> None:
            self._inbox = b"\x05garbage\x00hello world\x00"

    with pytest.raises(DeviceError, match="did not answer HELLO"):
        AmvmDriver(Garbage([]), timeout=0.02, retries=1)


def test_fault_rates_parse_and_validate() -> None:
    faults = Faults.parse("drop=0.01,flip=0.02,late_s=0.1")
    assert faults.drop == 0.01 and faults.flip == 0.02 and faults.late_s == 0.1 and faults.any
    for text, match in (("smoke=0.1", "bad fault"), ("drop=2", "in \\[0, 1\\]"), ("drop=x", "needs a number")):
        with pytest.raises(ConfigError, match=match):
            Faults.parse(text)


def test_emulator_config_validates_and_reads_toml(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "device.toml"
    path.write_text("[device]\nsigma_add = 0.02\nsigma_mul = 0.05\nseed = 3\nrows = 128\nadc_bits = 10\n")
    config = EmulatorConfig.from_toml(path, seed=4)
    assert (config.sigma_add, config.sigma_mul, config.seed, config.rows, config.adc_bits) == (0.02, 0.05, 4, 128, 10)
    path.write_text("sigma = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        EmulatorConfig.from_toml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        EmulatorConfig.from_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="rows must be"):
        EmulatorConfig(rows=0)
