"""Binary AMVM/1 framing vs per-vector ASCII SCPI, on the emulator over a pty, in one run.

Same work for both: an MLP (trained 10 epochs on mnist5k) evaluated on the mnist5k test set
through the device backend. The binary run uses `AmvmDriver` over pyserial; the ASCII run uses
`ScpiDriver.run_ascii` (one ``AMVM:RUNA?`` query per vector and tile) over pyvisa-py. Also
measured in the same run: the raw one-way pty throughput between two processes, and a RUN stream
(max batch on a full tile) to show how much of the raw rate the framing reaches.

    python benchmarks/device_link.py [--samples 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hil.backends.device.backend import DeviceBackend
from hil.backends.device.driver import AmvmDriver
from hil.backends.device.emulator import EmulatorProcess
from hil.backends.device.protocol import RunReply
from hil.backends.device.scpi import ScpiDriver
from hil.backends.device.transport import SerialTransport
from hil.checkpoint import load_checkpoint
from hil.config import TrainConfig
from hil.evaluation import accuracy
from hil.noisy_model import wrap
from hil.runs import load_checkpoint_data
from hil.training import train


def raw_pty_rate(megabytes: int = 64) -> float:
    """Bytes per second one way through a pty from this process to a reader process."""
    master, slave = os.openpty()
    import tty

    tty.setraw(slave)
    total = megabytes << 20
    reader = subprocess.Popen([sys.executable, "-c", f"import os,sys\nn=0\nwhile n<{total}:\n"
                               f"    n+=len(os.read({slave}, 1<<20))\nprint(n)"], pass_fds=(slave,),
                              stdout=subprocess.PIPE)
    chunk = b"\x55" * (64 << 10)
    started = time.perf_counter()
    for _ in range(total // len(chunk)):
        view = memoryview(chunk)
        while view:
            view = view[os.write(master, view):]
    reader.wait()
    seconds = time.perf_counter() - started
    os.close(master)
    os.close(slave)
    return total / seconds


class AsciiPerVector:
    """A `Driver` that runs every vector as its own ASCII query (the slow baseline)."""

    def __init__(self, scpi: ScpiDriver) -> None:
        self.scpi = scpi
        self.identity = scpi.identity
        self.payload = 0

    def capabilities(self):  # noqa: ANN201
        return self.scpi.capabilities()

    def load_tile(self, slot: int, codes: np.ndarray) -> None:
        self.scpi.load_tile(slot, codes)

    def run(self, slot: int, inputs: np.ndarray, repeats: int) -> RunReply:
        sat, codes = [], []
        for vector in inputs:
            s, c = self.scpi.run_ascii(slot, vector, repeats)
            sat.append(s)
            codes.append(c)
            self.payload += vector.size * 2 + c.size * 2
        return RunReply(np.stack(codes, axis=1), np.array(sat), 25.0, 0.0)

    def status(self):  # noqa: ANN201
        return self.scpi.status()

    def close(self) -> None:
        self.scpi.close()


def evaluate_through(driver, model, data, samples: int) -> tuple[float, float]:  # noqa: ANN001
    backend = DeviceBackend(driver)
    noisy = wrap(model, backend)
    started = time.perf_counter()
    value = accuracy(noisy, data.test_x[:samples], data.test_y[:samples], batch_size=1000)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        train(TrainConfig(model="mlp", dataset="mnist5k", epochs=10), Path(folder) / "mlp", keep_epochs=False)
        loaded = load_checkpoint(Path(folder) / "mlp")
        data = load_checkpoint_data(loaded.run)
    raw = raw_pty_rate()
    binary_process = EmulatorProcess("--port", "pty")
    scpi_process = EmulatorProcess("--port", "pty", "--framing", "scpi")
    binary_path, scpi_path = binary_process.address, scpi_process.address
    try:
        amvm = AmvmDriver(SerialTransport(binary_path))
        binary_acc, binary_s = evaluate_through(amvm, loaded.model, data, args.samples)
        stats = amvm.stats
        efficiency = (stats.payload_out + stats.payload_in) / (stats.bytes_out + stats.bytes_in)
        eval_rate = (stats.payload_out + stats.payload_in) / binary_s
        # RUN stream: full tile, max batch, the link's best case
        caps = amvm.capabilities()
        amvm.load_tile(0, np.ones((caps.rows, caps.cols), dtype=np.int16))
        vectors = np.random.default_rng(0).integers(-100, 100, (caps.max_batch, caps.rows)).astype(np.int16)
        before = stats.payload_out + stats.payload_in
        started = time.perf_counter()
        amvm.run_many(0, [vectors] * 20, 1, window=2)
        stream_rate = (stats.payload_out + stats.payload_in - before) / (time.perf_counter() - started)
        amvm.close()
        ascii_driver = AsciiPerVector(ScpiDriver(f"ASRL{scpi_path}::INSTR"))
        ascii_acc, ascii_s = evaluate_through(ascii_driver, loaded.model, data, args.samples)
        ascii_driver.close()
    finally:
        binary_process.stop()
        scpi_process.stop()
    print(f"device link — MLP on {args.samples} mnist5k test samples through the emulator over a pty")
    print(f"  binary AMVM/1 (pyserial):        {binary_s:7.2f} s, accuracy {binary_acc:.2%}")
    print(f"  per-vector ASCII SCPI (pyvisa):  {ascii_s:7.2f} s, accuracy {ascii_acc:.2%}")
    print(f"  speed-up binary vs ASCII: {ascii_s / binary_s:.1f}× (goal ≥ 20×)")
    print(f"  payload efficiency (useful bytes / bytes on the wire), binary: {efficiency:.3f} (goal ≥ 0.9)")
    print(f"  raw pty, one way between two processes: {raw / 1e6:.0f} MB/s")
    print(f"  link utilisation, whole evaluation (host + device compute included): {eval_rate / raw:.3f}")
    print(f"  link utilisation, RUN stream ({caps.max_batch}×{caps.rows} per frame): {stream_rate / raw:.3f} "
          f"({stream_rate / 1e6:.0f} MB/s payload; goal ≥ 0.5)")


if __name__ == "__main__":
    main()
