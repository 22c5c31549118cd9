"""The device side survives what a careless or hostile peer sends (issue 18, findings 2–4).

Every case failed before the change: the SCPI session raised out of the server loop, looped for
ever or held gigabytes; the frame reader held any amount of an unterminated frame; the SCPI error
queue grew without bound; a second TCP client waited for ever behind an idle one; 0.0.0.0 was
served without a word.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig
from hil.backends.device.emulator.device import ERROR_QUEUE
from hil.backends.device.emulator.scpi_session import ScpiSession
from hil.backends.device.emulator.serving import EmulatorProcess, busy_reply
from hil.backends.device.framing import OVERSIZED, Frame, FrameReader, FrameType, decode_frame, encoded_limit
from hil.backends.device.protocol import ErrorCode, Op

SMALL = EmulatorConfig(rows=4, cols=2, max_frame=4096)


def _session() -> tuple[DeviceEmulator, ScpiSession]:
    emulator = DeviceEmulator(SMALL)
    return emulator, ScpiSession(emulator)


def _still_answers(session: ScpiSession) -> None:
    assert session.feed(b"*IDN?\n")[0].startswith(b"hil,AMVM emulator")


@pytest.mark.parametrize("line", [
    b"AMVM:LOAD? 0,1,1,#2ab\n",  # finding 2: ValueError in the block parser ended the process
    b"AMVM:RUNA? 0,1,99999\n",  # finding 2: OverflowError (int16) ended the process
    b"*IDN? #9-99999999\n",  # finding 2: a negative block length looped for ever, growing
    b"AMVM:RUNA? 0," + b"9" * 5000 + b"\n",  # an integer too long for int()
    b"AMVM:RUN? 0,70000,1,#10\n",  # a batch beyond u16
    b"AMVM:LOAD? -1,1,1,#14abcd\n",
    b"#\n", b"#0\n", b"\xff\xfe\x00garbage\n", b"\n",
])
def test_a_malformed_scpi_line_is_an_error_and_the_session_goes_on(line: bytes) -> None:
    emulator, session = _session()
    session.feed(line)
    _still_answers(session)
    if line.strip():
        assert emulator.errors_total >= 1


def test_a_block_longer_than_max_frame_is_dropped_as_it_arrives() -> None:
    emulator, session = _session()
    session.feed(b"AMVM:LOAD? 0,4,2,#9000010000")  # finding 3: the session waited to hold the whole block
    for _ in range(10):
        session.feed(b"\n" * 1000)  # the block's own bytes, newlines included, are dropped
        assert len(session._buffer) == 0
    session.feed(b"\n")  # its terminator
    _still_answers(session)
    assert session.feed(b"SYST:ERR?\n")[0].startswith(b"-223,")


def test_an_endless_line_is_not_held() -> None:
    emulator, session = _session()
    for _ in range(100):
        session.feed(b"A" * 1000)
        assert len(session._buffer) <= SMALL.max_frame
    session.feed(b"tail of it\n")
    _still_answers(session)
    assert session.feed(b"SYST:ERR?\n")[0].startswith(b"-223,")


def test_the_scpi_error_queue_is_capped() -> None:
    emulator, session = _session()
    session.feed(b"BOGUS\n" * 10_000)  # finding 3: 10,000 entries were kept
    assert len(emulator.errors) == ERROR_QUEUE and emulator.errors_total == 10_000


def test_the_frame_reader_holds_no_more_than_its_limit() -> None:
    reader = FrameReader(encoded_limit(4096))
    for _ in range(64):  # finding 3: 64 MiB of an unterminated frame were held
        frames = reader.feed(b"\x01" * (1 << 20))
        assert reader.pending <= reader.limit
    assert reader.oversized == 1 and frames == []
    good = Frame(FrameType.REQUEST, 7, int(Op.IDENT)).encode()
    assert reader.feed(b"\x01\x00" + good) == [good[:-1]]  # resynchronised at the next delimiter
    whole = b"\x02" * (reader.limit + 10) + b"\x00"
    assert reader.feed(whole) == [OVERSIZED] and reader.oversized == 2


def test_the_emulator_answers_an_oversized_frame_with_a_queued_error() -> None:
    emulator = DeviceEmulator(SMALL)
    assert emulator.handle(OVERSIZED) is None
    reply = decode_frame(emulator.handle(Frame(FrameType.REQUEST, 1, int(Op.ERROR_POP)).encode()[:-1])[:-1])
    assert int.from_bytes(reply.body[:2], "little", signed=True) == ErrorCode.TOO_LARGE


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _ask(connection: socket.socket, request: bytes) -> bytes:
    connection.sendall(request)
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_live_scpi_server_survives_the_findings_and_serves_the_next_client() -> None:
    with EmulatorProcess("--tcp", "127.0.0.1:0", "--framing", "scpi", "--idle-s", "0.5") as emulator:
        with _connect(emulator.address) as first:
            for line in (b"AMVM:LOAD? 0,1,1,#2ab\n", b"AMVM:RUNA? 0,1,99999\n", b"*IDN? #9-99999999\n"):
                first.sendall(line)
            assert _ask(first, b"*IDN?\n").startswith(b"hil,AMVM emulator")
            with _connect(emulator.address) as second:  # finding 4: a second client got no answer at all
                assert _ask(second, b"*IDN?\n") == busy_reply("scpi")
            time.sleep(1.0)  # the first client sits idle past --idle-s: it is dropped
            with _connect(emulator.address) as third:
                assert _ask(third, b"*IDN?\n").startswith(b"hil,AMVM emulator")
        started = time.monotonic()
        emulator.process.terminate()
        emulator.process.wait(5)
        assert time.monotonic() - started < 1.0  # SIGTERM ends it within a second


def test_a_non_loopback_bind_needs_allow_remote() -> None:
    refused = subprocess.run([sys.executable, "-m", "hil", "device", "emulate", "--tcp", "0.0.0.0:0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--allow-remote" in refused.stderr and "Traceback" not in refused.stderr
    with EmulatorProcess("--tcp", "0.0.0.0:0", "--allow-remote") as emulator:
        assert emulator.address.endswith(tuple("0123456789"))
        emulator.stop()
        assert b"without authentication" in emulator.process.stderr.read()


def test_a_device_that_dies_answers_n_requests_then_stays_dead() -> None:
    from hil.backends.device.emulator.faults import FaultInjector, Faults
    from hil.errors import ConfigError

    injector = FaultInjector(Faults.parse("die_after=3"))
    replies = [injector.apply(b"reply\x00") for _ in range(5)]
    assert replies == [(b"reply\x00", 0.0, False)] * 3 + [(None, 0.0, True)] * 2
    assert injector.dead and Faults.parse("die_after=3").any
    for bad in ("die_after=-1", "die_after=1.5"):
        with pytest.raises(ConfigError, match="whole number"):
            Faults.parse(bad)
