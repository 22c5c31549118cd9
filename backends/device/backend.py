"""The ``device`` backend: Linear/Conv matmuls on an analog tile device, the rest digital.

Mapping of y = W x (W: out × in) onto tiles of R rows × C columns:

* W is split into blocks of ≤ R inputs × ≤ C outputs; each block is a tile. Per tile and column
  the host scales the weights to the DAC range (s_c = max |W[c, block]|) and quantises them to
  integer codes; tiles are cached per weight tensor (and its in-place version counter) and
  reloaded only when the weights change or slots run out (least recently used goes).
* Per input vector and row block, the input is scaled to the DAC range (t_b = max |x_b|) and
  quantised. The device returns ADC codes; the host undoes the scales,
  y = code / adc_max · full_scale · s_c · t_b, averages the repeats (multi-execution) and sums the
  partial results of the row blocks digitally; the bias is added digitally.
* With an input attenuation k (`attenuate`, the SNR walk) each vector is scaled to 1/k of the DAC
  range instead, and the result k× up when the scales are undone.
* A vector whose outputs saturate the ADC is run again with its input scaled down 4× (up to 3
  times); `DeviceBackend.saturation_reruns` counts it.
* Convolutions run as matmuls over unfolded patches (im2col); other sites run digitally with the
  noise the spec asks for (emulated, as in ``sim``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hil.backends.base import ConvParams, SiteCall, check_attenuation, check_placement, conv_as_matmul
from hil.backends.device.driver import AmvmDriver, Driver
from hil.backends.device.protocol import Capabilities
from hil.backends.gaussian import GaussianBackend
from hil.backends.spec import BackendSpec
from hil.errors import ConfigError

SATURATION_BACKOFF = 4.0
MAX_BACKOFFS = 3


@dataclass(frozen=True)
class _Tile:
    slot_key: tuple[int, int, int, int]
    row_start: int
    row_end: int
    col_start: int
    col_end: int
    codes: np.ndarray  # (rows, cols) int16
    scale: np.ndarray  # (cols,) float64


class DeviceBackend:
    """Runs matmuls on a `Driver`; everything else digitally (see module docstring).

    Args:
        driver: The hardware (an `AmvmDriver` over a transport, or a user's driver).
        seed: Seed of the emulated noise at digital sites.
        layers: Site names whose matmuls run on the device; None = all Linear/Conv sites. The
            others run digitally (clean, or with the spec's emulated noise).
        correction: Per device column (gain, offset) from a calibration profile; outputs are
            corrected as (y − offset) / gain before the scales are undone.
    """

    name = "device"

    def __init__(self, driver: Driver, seed: int = 0, layers: frozenset[str] | None = None,
                 correction: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.driver = driver
        self.caps: Capabilities = driver.capabilities()
        self.device = torch.device("cpu")
        self.digital = GaussianBackend(self.device, seed)
        self.layers = layers
        if correction is not None and len(correction[0]) < self.caps.cols:
            raise ConfigError(f"the calibration profile has {len(correction[0])} columns but the device has "
                              f"{self.caps.cols}: it belongs to another device")
        self.correction = correction
        self.attenuation = 1.0
        self._tiles: dict[tuple[int, int, int], list[_Tile]] = {}
        self._slots: OrderedDict[tuple[int, int, int, int], int] = OrderedDict()
        self.saturation_reruns = 0
        self.vectors_run = 0
        self.tile_loads = 0

    # -- Backend protocol -------------------------------------------------------------------

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               call: SiteCall) -> torch.Tensor:
        if not self._on_device(call):
            return self.digital.linear(x, weight, bias, call)
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        y = self._matmul(flat, weight, call.noise.repeats)
        if bias is not None:
            y = y + bias
        return y.reshape(*shape[:-1], weight.shape[0])

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, params: ConvParams,
             call: SiteCall) -> torch.Tensor:
        if not self._on_device(call):
            return self.digital.conv(x, weight, bias, params, call)
        return conv_as_matmul(x, weight, bias, params, lambda flat, w: self._matmul(flat, w, call.noise.repeats),
                              where=f"{call.name} is not one — run it digitally (#layers=…)")

    def perturb(self, y: torch.Tensor, call: SiteCall) -> torch.Tensor:
        return self.digital.perturb(y, call)

    def check_sites(self, sites: tuple[Any, ...]) -> None:
        """Refuse a layer placement that names no Linear/Conv site of the model."""
        check_placement(self.layers, sites, "device")

    def place(self, layers: frozenset[str] | None) -> None:
        """Run only ``layers`` here, the other Linear/Conv sites digitally (`PlacesLayers`)."""
        self.layers = layers

    def attenuate(self, k: float) -> None:
        """Scale every input vector to 1/k of the DAC range, the result up by k (`AttenuatesInputs`)."""
        self.attenuation = check_attenuation(k)

    def reseed(self, seed: int) -> None:
        self.digital.reseed(seed)

    def __reduce__(self) -> Any:
        raise TypeError("a device backend holds the connection to one chip and cannot be copied to another "
                        "process; run its studies with --executor local")

    def close(self) -> None:
        self.driver.close()

    # -- mapping ----------------------------------------------------------------------------

    def _on_device(self, call: SiteCall) -> bool:
        return self.layers is None or call.name in self.layers

    def _tiles_for(self, weight: torch.Tensor) -> list[_Tile]:
        key = (id(weight), weight._version, weight.data_ptr())
        tiles = self._tiles.get(key)
        if tiles is None:
            tiles = self._quantise(weight.detach().cpu().double().numpy(), key)
            self._tiles = {k: v for k, v in self._tiles.items() if k[0] != key[0]}  # weight changed: drop old
            self._tiles[key] = tiles
        return tiles

    def _quantise(self, w: np.ndarray, key: tuple[int, int, int]) -> list[_Tile]:
        caps = self.caps
        out_features, in_features = w.shape
        tiles: list[_Tile] = []
        for r0 in range(0, in_features, caps.rows):
            r1 = min(r0 + caps.rows, in_features)
            for c0 in range(0, out_features, caps.cols):
                c1 = min(c0 + caps.cols, out_features)
                block = w[c0:c1, r0:r1].T  # (rows, cols)
                scale = np.abs(block).max(axis=0)
                scale[scale == 0] = 1.0
                codes = np.rint(block / scale * caps.dac_max).astype(np.int16)
                tiles.append(_Tile((*key, len(tiles)), r0, r1, c0, c1, codes, scale))
        return tiles

    def _slot(self, tile: _Tile) -> int:
        if tile.slot_key in self._slots:
            self._slots.move_to_end(tile.slot_key)
            return self._slots[tile.slot_key]
        if len(self._slots) < self.caps.slots:
            slot = len(self._slots)
        else:
            _, slot = self._slots.popitem(last=False)
        self.driver.load_tile(slot, tile.codes)
        self.tile_loads += 1
        self._slots[tile.slot_key] = slot
        return slot

    def _matmul(self, x: torch.Tensor, weight: torch.Tensor, repeats: int) -> torch.Tensor:
        if repeats > self.caps.max_repeats:
            raise ConfigError(f"{repeats} executions per site exceed the device's max_repeats "
                              f"{self.caps.max_repeats}")
        tiles = self._tiles_for(weight)
        inputs = x.detach().cpu().double().numpy()
        out = np.zeros((inputs.shape[0], weight.shape[0]))
        for tile in tiles:
            out[:, tile.col_start:tile.col_end] += self._run_tile(tile, inputs[:, tile.row_start:tile.row_end],
                                                                  repeats)
        result = torch.from_numpy(out).to(dtype=x.dtype, device=x.device)
        if x.requires_grad or weight.requires_grad:  # straight-through: gradient of the exact matmul
            exact = x @ weight.T
            result = exact + (result - exact).detach()
        return result

    def _run_tile(self, tile: _Tile, x: np.ndarray, repeats: int) -> np.ndarray:
        caps = self.caps
        vector_scale = np.abs(x).max(axis=1)
        vector_scale[vector_scale == 0] = 1.0
        gain = np.full(len(x), 1.0 / self.attenuation)
        result = np.zeros((len(x), tile.col_end - tile.col_start))
        todo = np.arange(len(x))
        for backoff in range(MAX_BACKOFFS + 1):
            codes = np.rint(x[todo] / vector_scale[todo, None] * gain[todo, None] * caps.dac_max).astype(np.int16)
            averaged, saturated = self._run_codes(tile, codes, repeats)
            unit = caps.full_scale / caps.adc_max
            z = averaged * unit
            if self.correction is not None:
                width = tile.col_end - tile.col_start
                z = (z - self.correction[1][:width]) / self.correction[0][:width]
            result[todo] = z * tile.scale[None, :] * (vector_scale[todo] / gain[todo])[:, None]
            if not saturated.any() or backoff == MAX_BACKOFFS:
                break
            todo = todo[saturated]
            gain[todo] /= SATURATION_BACKOFF
            self.saturation_reruns += len(todo)
        return result

    def _run_codes(self, tile: _Tile, codes: np.ndarray, repeats: int) -> tuple[np.ndarray, np.ndarray]:
        caps = self.caps
        slot = self._slot(tile)
        cols = tile.col_end - tile.col_start
        per_vector = max(repeats * cols * 2, tile.codes.shape[0] * 2)
        batch = max(1, min(caps.max_batch, (caps.max_frame - 256) // per_vector))
        averaged = np.empty((len(codes), cols))
        saturated = np.zeros(len(codes), dtype=bool)
        chunks = [codes[start:start + batch] for start in range(0, len(codes), batch)]
        run_many = getattr(self.driver, "run_many", None)  # pipelined when the driver can
        replies = run_many(slot, chunks, repeats) if run_many else [self.driver.run(slot, c, repeats) for c in chunks]
        for start, reply in zip(range(0, len(codes), batch), replies, strict=True):
            averaged[start:start + batch] = reply.codes.astype(np.float64).mean(axis=0)
            saturated[start:start + batch] = reply.saturated
        self.vectors_run += len(codes) * repeats
        return averaged, saturated


def open_driver(address: str, timeout: float = 2.0, record: str | None = None,
                library: str | None = None) -> Driver:
    """A driver for ``serial:…``, ``tcp:…``, ``visa:…``, ``replay:…`` or ``NAME:…`` (``hil.drivers``).

    ``library`` is the pyvisa library for ``visa:`` (default ``@py``; ``FILE.yaml@sim`` for pyvisa-sim).

    Raises:
        ConfigError: Unknown transport or driver.
        DeviceError: The device cannot be reached or speaks another protocol.
    """
    from hil.backends.device.transport import RecordingTransport, open_transport

    kind, _, rest = address.partition(":")
    if kind == "visa":
        from hil.backends.device.scpi import open_visa

        return open_visa(rest, timeout, library)
    from hil.backends.device.plugins import BUILT_IN, load_driver

    if kind not in BUILT_IN:
        return load_driver(kind, rest)
    transport = open_transport(address)
    if record:
        transport = RecordingTransport(transport, record)
    return AmvmDriver(transport, timeout=timeout)


def create_device_backend(spec: BackendSpec) -> DeviceBackend:
    """Registry factory for ``device:TRANSPORT:ADDRESS[#record=FILE;layers=1:fc1,3:fc2;timeout=2;calibration=P]``."""
    address = spec.address or ""
    layers = spec.option("layers")
    record = spec.option("record")
    if record is not None and address.startswith("visa:"):
        raise ConfigError("record= works on serial: and tcp: links; the visa: framing is not recorded")
    correction = None
    if spec.option("calibration") is not None:
        from hil.calibration.profile import read_profile

        correction = read_profile(spec.option("calibration")).correction()
    driver = open_driver(address, timeout=spec.option("timeout", 2.0), record=record,
                         library=spec.option("visa_library"))
    try:
        return DeviceBackend(driver, spec.seed, None if layers is None else frozenset(layers), correction)
    except BaseException:
        driver.close()
        raise
