"""Every parser fuzzed (issue 18): no input raises anything but hil's own errors, nothing hangs, round-trips exact.

Each hypothesis example has a deadline, so an input that made a parser loop fails the test instead of
hanging it; the live-server tests send thousands of malformed requests over TCP and then check the
emulator still answers.
"""

from __future__ import annotations

import json
import socket
import string
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig
from hil.backends.device.emulator.device import ERROR_QUEUE
from hil.backends.device.emulator.scpi_session import ScpiSession
from hil.backends.device.emulator.serving import EmulatorProcess
from hil.backends.device.framing import (
    Frame,
    FrameReader,
    FrameType,
    decode_frame,
    encoded_limit,
)
from hil.backends.device.protocol import Capabilities, Op, RunReply, ieee_block, parse_reply
from hil.backends.device.transport import ReplayTransport
from hil.backends.spec import parse_backend_spec
from hil.errors import ConfigError, DeviceError, FrameError, HilError
from hil.noise import NoiseSpec
from hil.walking.grid import parse_sigmas

FUZZ = settings(max_examples=400, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])
SMALL = EmulatorConfig(rows=4, cols=2, max_frame=4096)

frames = st.builds(Frame, st.sampled_from(list(FrameType)), st.integers(0, 0xFFFF), st.integers(0, 255),
                   st.binary(max_size=600), st.integers(-32768, 32767), st.integers(0, 255))


@FUZZ
@given(frames=st.lists(frames, min_size=1, max_size=5), cuts=st.lists(st.integers(1, 50), max_size=20))
def test_frames_round_trip_exactly_through_any_chunking(frames: list[Frame], cuts: list[int]) -> None:
    wire = b"".join(frame.encode() for frame in frames)
    reader, received, start = FrameReader(), [], 0
    for cut in [*cuts, len(wire)]:
        received += reader.feed(wire[start:start + cut])
        start += cut
    received += reader.feed(wire[start:])
    assert [decode_frame(encoded) for encoded in received] == frames


@FUZZ
@given(data=st.binary(max_size=2000))
def test_decoding_any_bytes_raises_only_a_frame_error(data: bytes) -> None:
    try:
        decode_frame(data)
    except FrameError:
        pass


@FUZZ
@given(chunks=st.lists(st.binary(max_size=3000), max_size=10))
def test_the_device_answers_any_bytes_without_raising(chunks: list[bytes]) -> None:
    emulator = DeviceEmulator(SMALL)
    reader = FrameReader(encoded_limit(SMALL.max_frame))
    for chunk in chunks:
        for encoded in reader.feed(chunk):
            reply = emulator.handle(encoded)
            assert reply is None or reply.endswith(b"\x00")
        assert reader.pending <= reader.limit
    assert len(emulator.errors) <= 32


scpi_words = st.sampled_from([b"*IDN?", b"*RST", b"*CLS", b"SYST:ERR?", b"AMVM:PROT?", b"AMVM:CAP?", b"AMVM:STAT?",
                              b"AMVM:LOAD? ", b"AMVM:RUN? ", b"AMVM:RUNA? ", b"#", b"#9", b"#2ab", b",", b"\n", b"-",
                              b"99999", b"0", b"1", b"\xff", b" "])


@FUZZ
@given(pieces=st.lists(st.one_of(scpi_words, st.binary(max_size=40)), max_size=60))
def test_the_scpi_session_survives_any_stream(pieces: list[bytes]) -> None:
    emulator = DeviceEmulator(SMALL)
    session = ScpiSession(emulator)
    for piece in pieces:
        for reply in session.feed(piece):
            assert reply.endswith(b"\n")
        assert len(session._buffer) <= SMALL.max_frame
    assert len(emulator.errors) <= ERROR_QUEUE


@FUZZ
@given(body=st.binary(max_size=200), batch=st.integers(1, 4), repeats=st.integers(1, 3))
def test_host_parses_any_reply_body_or_says_it_is_malformed(body: bytes, batch: int, repeats: int) -> None:
    for what, parse in (("RUN", lambda: RunReply.unpack(body).check(batch, repeats)),
                        ("CAPS", lambda: Capabilities.unpack(body))):
        try:
            parse_reply("fuzz", what, parse)
        except DeviceError as error:
            assert "malformed" in str(error)


def test_a_well_formed_run_reply_for_another_request_is_refused() -> None:
    emulator = DeviceEmulator(SMALL)
    emulator.run_operation(int(Op.LOAD), bytes([0, 4, 0, 2, 0]) + np.ones((4, 2), "<i2").tobytes())
    status, body = emulator.run_operation(int(Op.RUN), bytes([0, 1, 0, 1, 0]) + np.ones(4, "<i2").tobytes())
    assert status == 0
    with pytest.raises(DeviceError, match="malformed RUN"):
        parse_reply("fuzz", "RUN", lambda: RunReply.unpack(body).check(3, 1))


spec_text = st.text(alphabet=string.ascii_letters + string.digits + ":#;=,._-/ \x00é", max_size=60)


@FUZZ
@given(text=st.one_of(spec_text, st.sampled_from(["sim", "twin:", "device:", "sim#seed=", "gpu#", "device:tcp:x:y",
                                                   "twin:p.toml#layers=", "sim#seed=-1", "device:replay:#timeout=0"])))
def test_the_backend_spec_parser_raises_only_hil_errors(text: str) -> None:
    try:
        spec = parse_backend_spec(text)
    except HilError:
        return
    assert parse_backend_spec(spec.text) == spec  # what it accepts, it reads back the same


@FUZZ
@given(text=st.text(alphabet=string.digits + "login:e.-,", max_size=30))
def test_the_sigma_grid_parser_raises_only_config_errors(text: str) -> None:
    try:
        grid = parse_sigmas(text)
    except ConfigError:
        return
    assert all(s >= 0 for s in grid)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(),
                                     st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["sigma_add", "sigma_mul", "order", "sites", "gradient", "repeats",
                                             "overrides", "seed", "bogus"]), json_values, max_size=5))
def test_noise_settings_parse_or_raise_a_config_error(data: dict) -> None:
    try:
        spec = NoiseSpec.from_dict(data)
    except ConfigError:
        return
    assert NoiseSpec.from_dict(spec.to_dict()) == spec


@settings(max_examples=200, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=20)), max_size=6))
def test_the_recording_reader_raises_only_config_errors(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join([json.dumps({"hilrec": 1}), *lines]))
    try:
        ReplayTransport(path)
    except ConfigError:
        pass


def _malformed_binary(rng: np.random.Generator) -> bytes:
    kind = rng.integers(4)
    if kind == 0:  # random bytes, delimited
        return rng.bytes(int(rng.integers(1, 80))).replace(b"\x00", b"\x01") + b"\x00"
    frame = Frame(FrameType.REQUEST, int(rng.integers(0, 0xFFFF)), int(rng.integers(0, 255)),
                  rng.bytes(int(rng.integers(0, 40)))).encode()
    if kind == 1:  # a valid frame with one byte flipped
        index = int(rng.integers(0, len(frame) - 1))
        return frame[:index] + bytes([frame[index] ^ 0x5A or 1]) + frame[index + 1:]
    return frame  # a well-formed request with any operation and body


def _malformed_scpi(rng: np.random.Generator) -> bytes:
    words = [b"AMVM:LOAD? ", b"AMVM:RUN? ", b"AMVM:RUNA? ", b"*IDN? ", b"BOGUS ", b"SYST:ERR? ", b"AMVM:CAP?"]
    arguments = b",".join(str(int(v)).encode() for v in rng.integers(-70000, 70000, int(rng.integers(0, 6))))
    tail = [b"", b",#2ab", b",#9-1234567", b",#0", b"," + ieee_block(rng.bytes(int(rng.integers(0, 20)))),
            rng.bytes(8).replace(b"\n", b" ").replace(b"#", b" ")][int(rng.integers(6))]
    return words[int(rng.integers(len(words)))] + arguments + tail + b"\n"


@pytest.mark.parametrize("framing", ["binary", "scpi"])
def test_live_server_answers_after_five_thousand_malformed_requests(framing: str) -> None:
    rng = np.random.default_rng(18)
    make = _malformed_binary if framing == "binary" else _malformed_scpi
    requests = [make(rng) for _ in range(5000)]
    with EmulatorProcess("--tcp", "127.0.0.1:0", "--framing", framing) as emulator:
        host, _, port = emulator.address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.setblocking(False)
            for start in range(0, len(requests), 100):
                connection.sendall(b"".join(requests[start:start + 100]))
                try:
                    while connection.recv(1 << 20):  # drain what it answered so far
                        pass
                except BlockingIOError:
                    pass
            connection.setblocking(True)
            if framing == "scpi":
                connection.sendall(b"\n*IDN?\n")
                data = b""
                while b"hil,AMVM emulator" not in data:  # earlier replies first; a 10 s socket timeout bounds it
                    chunk = connection.recv(1 << 20)
                    assert chunk, "the emulator closed the link"
                    data += chunk
            else:
                connection.sendall(b"\x00" + Frame(FrameType.REQUEST, 4242, int(Op.IDENT)).encode())
                reader, answered = FrameReader(), False
                while not answered:  # the replies to earlier requests come first; a 10 s socket timeout bounds it
                    chunk = connection.recv(1 << 20)
                    assert chunk, "the emulator closed the link"
                    for encoded in reader.feed(chunk):
                        try:
                            reply = decode_frame(encoded)
                        except FrameError:
                            continue
                        answered |= reply.seq == 4242 and reply.type == FrameType.RESPONSE
        assert emulator.process.poll() is None  # still running
