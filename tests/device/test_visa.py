"""The SCPI/VISA framing: the text surface against pyvisa-sim, and computation against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.backends.device.emulator import DeviceEmulator, EmulatorConfig, ScpiSession
from hil.backends.device.protocol import ieee_block
from hil.backends.device.scpi import ScpiDriver
from hil.backends.device.transport import DeviceError
from hil.cli import app

SIM = f"{Path(__file__).parent / 'data' / 'amvm_visa_sim.yaml'}@sim"


def test_identity_capabilities_and_status_through_pyvisa_sim() -> None:
    driver = ScpiDriver("ASRL1::INSTR", library=SIM, timeout=0.5)
    assert driver.identity == "hil,AMVM pyvisa-sim,SIM-0001,1.0"
    caps = driver.capabilities()
    assert (caps.rows, caps.cols, caps.dac_bits, caps.adc_bits, caps.full_scale) == (128, 32, 8, 12, 8.0)
    assert driver.status().temperature == 31.5
    driver.close()
    driver.close()


def test_device_info_cli_through_pyvisa_sim() -> None:
    from hil.backends.device import backend as device_backend

    original = device_backend.open_driver
    device_backend.open_driver = lambda address, timeout=2.0, record=None, library=None: original(
        address, timeout, record, SIM)
    try:
        result = CliRunner().invoke(app, ["device", "info", "--device", "visa:ASRL1::INSTR", "--json"])
    finally:
        device_backend.open_driver = original
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["capabilities"]["cols"] == 32


def test_a_device_speaking_another_protocol_version_is_refused() -> None:
    with pytest.raises(DeviceError, match="speaks 'AMVM/0'; this hil speaks AMVM/1"):
        ScpiDriver("ASRL2::INSTR", library=SIM, timeout=0.5)


def test_an_unknown_resource_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="cannot open VISA resource ASRL/dev/does-not-exist::INSTR"):
        ScpiDriver("ASRL/dev/does-not-exist::INSTR", timeout=0.5)


def test_emulator_scpi_session_parses_blocks_with_newlines_inside() -> None:
    emulator = DeviceEmulator(EmulatorConfig(rows=4, cols=2, adc_bits=16, full_scale=1.0))
    session = ScpiSession(emulator)
    codes = np.array([[10, 10], [10, 10], [10, 10], [10, 10]], dtype="<i2")  # 10 = 0x0a = '\n' inside the block
    stream = b"*IDN?\nAMVM:LOAD? 0,4,2," + ieee_block(codes.tobytes()) + b"\n"
    replies = []
    for start in range(0, len(stream), 5):  # arrives in pieces
        replies += session.feed(stream[start:start + 5])
    assert replies[0].startswith(b"hil,AMVM emulator")
    import crc32c

    assert int(replies[1]) == crc32c.crc32c(codes.tobytes())
    run = session.feed(b"AMVM:RUN? 0,1,2," + ieee_block(np.full(4, 127, dtype="<i2").tobytes()) + b"\n")
    assert run[0].startswith(b"#")
    ascii_run = session.feed(b"AMVM:RUNA? 0,1,127,127,127,127\n")[0].decode().strip().split(",")
    assert ascii_run[0] == "0" and len(ascii_run) == 3
    assert session.feed(b"AMVM:RUN? 5,1,1," + ieee_block(np.zeros(4, dtype="<i2").tobytes()) + b"\n") == []
    assert session.feed(b"SYST:ERR?\n")[0].startswith(b"1001,")
    assert session.feed(b"BOGUS:CMD\nSYST:ERR?\n")[0].startswith(b"-100,")
