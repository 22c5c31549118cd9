"""The ``twin`` backend: a digital twin of a calibrated device, driven by the profile's noise card.

It reproduces the ``device`` backend's forward pass in vectorised torch (CPU or CUDA), then the
card's analog model instead of a chip:

* the same mapping: W split into tiles of ≤ R inputs × ≤ C outputs, each tile column scaled to
  the DAC range (s = max |W|) and quantised; each input vector's row block scaled (t = max |x|)
  and quantised (to 1/k of the range with an input attenuation k, as on the device); the exact
  integer dot product z per tile;
* the card per device column k: g_k · z · (1 + σm,k ε1) + o_k + σa,k ε2 (mul-first, or add-first),
  ADC rounding and clipping at full scale, each of the r executions drawn and quantised on its own,
  then averaged;
* a tile run whose outputs clip is run again with its input scaled down 4× (up to 3 times), as the
  device backend does; `TwinBackend.saturation_reruns` counts those vectors;
* the device backend's gain/offset correction (``correct``, on by default — as
  ``device:…#calibration=PROFILE``), then the scales undone and the row blocks summed.

Drift: with ``temperature=T`` and/or ``elapsed=S`` the card's offset and σa slopes move the values from
the calibration's mean temperature and from the middle of its run (`hil.calibration.card.Drift.at`);
``uptime=U`` gives the time on the device's own clock instead (elapsed = U less the card's uptime).
Gradients are straight-through (the exact matmul's), so ``hil train`` runs on the twin.
Other sites run digitally with the spec's noise, as on the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from hil.backends.base import ConvParams, SiteCall, check_attenuation, check_placement, conv_as_matmul
from hil.backends.gaussian import GaussianBackend
from hil.backends.spec import BackendSpec
from hil.errors import ConfigError

SATURATION_BACKOFF = 4.0
MAX_BACKOFFS = 3


class TwinBackend:
    """Runs Linear/Conv matmuls through the card's model of the device (see module docstring).

    Args:
        card: The device's `hil.calibration.card.NoiseCard`.
        device: Torch device the twin computes on.
        seed: Seed of all noise (twin and digital sites).
        layers: Site names whose matmuls run on the twin; None = all Linear/Conv sites.
        correct: Undo the card's gain and offset as the device backend does with a profile.
        per_column: Use the card's per-column σa/σm (shrunk); False: the pooled values everywhere.
        temperature: Device temperature (°C) to reproduce; None = the calibration's own.
        elapsed: Seconds after the calibration run to reproduce; None = the run's own time.
    """

    name = "twin"

    def __init__(self, card: Any, device: str | torch.device = "cpu", seed: int = 0,
                 layers: frozenset[str] | None = None, correct: bool = True, per_column: bool = True,
                 temperature: float | None = None, elapsed: float | None = None) -> None:
        self.card = card
        self.device = torch.device(device)
        self.digital = GaussianBackend(self.device, seed, name="twin")
        self.layers = layers
        self.correct = correct
        self.attenuation = 1.0
        values = {"gain": list(card.gain), "offset": list(card.offset),
                  "sigma_add": list(card.sigma_add.shrunk) if per_column else [card.sigma_add.pooled] * card.cols,
                  "sigma_mul": list(card.sigma_mul.shrunk) if per_column else [card.sigma_mul.pooled] * card.cols}
        true_offset = values["offset"]
        _warn_if_drift_cannot_say(card.drift, temperature, elapsed)
        if (temperature is not None or elapsed is not None) and card.drift is not None:
            shift, factor = card.drift.at(temperature, elapsed)
            true_offset = [o + shift for o in values["offset"]]
            values["sigma_add"] = [s * factor for s in values["sigma_add"]]
        self._column = {key: torch.tensor(v, dtype=torch.float64, device=self.device) for key, v in values.items()}
        self._column["true_offset"] = torch.tensor(true_offset, dtype=torch.float64, device=self.device)
        self._exact_dtype = torch.float32 if card.rows * card.dac_max**2 < 2**24 else torch.float64
        self._tiles: dict[int, tuple[tuple[int, int, int], torch.Tensor, torch.Tensor]] = {}
        self._streams: list[torch.Generator] = [self.digital.generator]
        # counted on the device, read only when asked: adding them up must not wait for the GPU
        self._saturation_reruns = torch.zeros((), dtype=torch.int64, device=self.device)
        self._vectors_run = torch.zeros((), dtype=torch.int64, device=self.device)

    @property
    def saturation_reruns(self) -> int:
        """Vectors run again at a lower input scale because an output saturated (as the device counts)."""
        return int(self._saturation_reruns)

    @property
    def vectors_run(self) -> int:
        """Input vectors executed, repetitions and saturation re-runs included."""
        return int(self._vectors_run)

    def __repr__(self) -> str:
        return f"TwinBackend(device={str(self.device)!r}, rows={self.card.rows}, cols={self.card.cols})"

    # -- Backend protocol -------------------------------------------------------------------

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               call: SiteCall) -> torch.Tensor:
        """``x @ weight.T + bias`` as the device would compute it."""
        if not self._on_twin(call):
            return self.digital.linear(x, weight, bias, call)
        shape = x.shape
        y = self._matmul(x.reshape(-1, shape[-1]), weight, call.noise.repeats)
        if bias is not None:
            y = y + bias
        return y.reshape(*shape[:-1], weight.shape[0])

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, params: ConvParams,
             call: SiteCall) -> torch.Tensor:
        """A 2-D convolution as the device would compute it (im2col, like the device backend)."""
        if not self._on_twin(call):
            return self.digital.conv(x, weight, bias, params, call)
        return conv_as_matmul(x, weight, bias, params, lambda flat, w: self._matmul(flat, w, call.noise.repeats),
                              where=f"{call.name} is not one — run it digitally (twin:…#layers=…)")

    def perturb(self, y: torch.Tensor, call: SiteCall) -> torch.Tensor:
        """Digital sites: the spec's emulated noise."""
        return self.digital.perturb(y, call)

    def check_sites(self, sites: tuple[Any, ...]) -> None:
        """Refuse a layer placement that names no Linear/Conv site of the model."""
        check_placement(self.layers, sites, "twin")

    def place(self, layers: frozenset[str] | None) -> None:
        """Run only ``layers`` here, the other Linear/Conv sites digitally (`PlacesLayers`)."""
        self.layers = layers

    def attenuate(self, k: float) -> None:
        """Scale every input vector to 1/k of the DAC range, the result up by k (`AttenuatesInputs`)."""
        self.attenuation = check_attenuation(k)

    def reseed(self, seed: int) -> None:
        """Restart all noise from ``seed`` (one stream for the whole batch again)."""
        self.digital.reseed(seed)
        self._streams = [self.digital.generator]

    def draw_from(self, generators: Sequence[torch.Generator]) -> None:
        """Draw block i of every later batch from ``generators[i]`` (`DrawsPerBlock`).

        The twin's own noise only: digital sites keep drawing from the backend's seed.
        """
        if not generators:
            raise ValueError("draw_from needs at least one generator")
        self._streams = list(generators)

    def close(self) -> None:
        """Drop cached tiles (the backend stays usable)."""
        self._tiles.clear()
        self.digital.close()

    # -- the device's mapping, batched ------------------------------------------------------

    def _on_twin(self, call: SiteCall) -> bool:
        return self.layers is None or call.name in self.layers

    def _weight_tiles(self, weight: torch.Tensor, blocks: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (out, blocks, rows), scale (out, blocks)) of ``weight``, cached until it changes."""
        key = (weight._version, weight.data_ptr(), blocks)
        cached = self._tiles.get(id(weight))
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        dac_max = self.card.dac_max
        w = weight.detach().to(self.device, torch.float64)
        padded = F.pad(w, (0, blocks * rows - w.shape[1])).view(w.shape[0], blocks, rows)
        scale = padded.abs().amax(dim=2)
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        codes = torch.round(padded / scale[..., None] * dac_max)
        self._tiles[id(weight)] = (key, codes, scale)
        return codes, scale

    def _matmul(self, x: torch.Tensor, weight: torch.Tensor, repeats: int) -> torch.Tensor:
        card = self.card
        cols = card.cols
        out_features, in_features = weight.shape
        blocks = math.ceil(in_features / card.rows)
        rows = card.rows if blocks > 1 else in_features  # one tile: no zero rows to carry
        col_blocks = math.ceil(out_features / cols)
        w_codes, w_scale = self._weight_tiles(weight, blocks, rows)
        inputs = F.pad(x.detach().to(torch.float64), (0, blocks * rows - in_features)).view(len(x), blocks, rows)
        vector_scale = inputs.abs().amax(dim=2)
        vector_scale = torch.where(vector_scale == 0, torch.ones_like(vector_scale), vector_scale)
        column = torch.arange(out_features, device=self.device) % cols
        terms = {key: value[column] for key, value in self._column.items()}
        result = torch.zeros(len(x), blocks, out_features, dtype=torch.float64, device=self.device)
        pending = torch.ones(len(x), blocks, col_blocks, dtype=torch.bool, device=self.device)
        rows_per_stream = self._rows_per_stream(len(x))
        for backoff in range(MAX_BACKOFFS + 1):
            active = pending.view(len(self._streams), -1).any(dim=1).tolist() if backoff else None
            gain = SATURATION_BACKOFF ** -backoff / self.attenuation
            x_codes = torch.round(inputs / vector_scale[..., None] * gain * card.dac_max)
            z = torch.einsum("ntr,otr->nto", x_codes.to(self._exact_dtype),
                             w_codes.to(self._exact_dtype)).to(torch.float64) / card.dac_max**2
            averaged, clipped = self._run(z, terms, repeats, rows_per_stream, active)
            y = averaged * (card.full_scale / card.adc_max)
            if self.correct:
                y = (y - terms["offset"]) / terms["gain"]
            y = y * w_scale.T[None] * (vector_scale / gain)[..., None]
            saturated = F.pad(clipped, (0, col_blocks * cols - out_features)).view(*clipped.shape[:2], col_blocks,
                                                                                 cols).any(dim=3)
            take = pending & (~saturated if backoff < MAX_BACKOFFS else torch.ones_like(saturated))
            chosen = take.repeat_interleave(cols, dim=2)[..., :out_features]
            result = torch.where(chosen, y, result)
            pending = pending & ~take
            self._vectors_run += take.sum() * repeats
            if not bool(pending.any()):  # the one wait for the GPU per layer: whether anything saturated
                break
            self._saturation_reruns += pending.sum()
        y = result.sum(dim=1).to(x.dtype)
        if x.requires_grad or weight.requires_grad:  # straight-through: gradient of the exact matmul
            exact = x @ weight.T
            y = exact + (y - exact).detach()
        return y

    def _rows_per_stream(self, rows: int) -> int:
        """Rows per stream of a batch of ``rows`` vectors (the batch split evenly over the streams)."""
        streams = len(self._streams)
        if rows % streams:
            raise ValueError(f"a batch of {rows} vectors does not split into {streams} equal stacked draws")
        return rows // streams

    def _normal(self, z: torch.Tensor, rows: int, active: list[bool] | None) -> torch.Tensor:
        """Standard normals shaped like ``z``, block i from stream i; inactive blocks draw nothing (zeros)."""
        if len(self._streams) == 1:
            return torch.randn(z.shape, generator=self._streams[0], device=z.device, dtype=z.dtype)
        shape = (rows, *z.shape[1:])
        return torch.cat([torch.randn(shape, generator=stream, device=z.device, dtype=z.dtype)
                          if active is None or active[i] else z.new_zeros(shape)
                          for i, stream in enumerate(self._streams)])

    def _run(self, z: torch.Tensor, terms: dict[str, torch.Tensor], repeats: int, rows: int,
             active: list[bool] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Averaged ADC codes of ``repeats`` executions and whether any output clipped, per element.

        ``rows`` vectors per stream; ``active`` (None: all) says which streams' blocks are still run.
        """
        card = self.card
        total = torch.zeros_like(z)
        clipped = torch.zeros(z.shape, dtype=torch.bool, device=z.device)
        signal = terms["gain"] * z
        for _ in range(repeats):
            multiplier = 1.0 + terms["sigma_mul"] * self._normal(z, rows, active)
            additive = terms["sigma_add"] * self._normal(z, rows, active)
            if card.order == "mul-first":
                analog = signal * multiplier + terms["true_offset"] + additive
            else:
                analog = (signal + terms["true_offset"] + additive) * multiplier
            ideal = torch.round(analog / card.full_scale * card.adc_max)
            clipped |= ideal.abs() > card.adc_max
            total += ideal.clamp(-card.adc_max, card.adc_max)
        return total / repeats, clipped


def create_twin_backend(spec: BackendSpec) -> TwinBackend:
    """Registry factory for ``twin:PROFILE[#seed=;layers=;correct=;per_column=;temperature=;elapsed=;uptime=;on=cuda]``.

    Raises:
        ConfigError: No or unreadable profile, bad options.
        BackendUnavailableError: ``on=cuda`` without CUDA.
    """
    from hil.calibration.profile import read_profile

    if not spec.address:
        raise ConfigError("the twin needs the calibration profile it reproduces: twin:profile.toml")
    card = read_profile(spec.address).noise_card()
    on = spec.option("on", "cpu")
    if on.startswith("cuda") and not torch.cuda.is_available():
        from hil.errors import BackendUnavailableError

        raise BackendUnavailableError(f"twin on={on} needs CUDA, but torch.cuda.is_available() is False here; "
                                      f"drop on= to run the twin on the CPU")
    layers = spec.option("layers")
    return TwinBackend(card, on, spec.seed, None if layers is None else frozenset(layers),
                       correct=spec.option("correct", True), per_column=spec.option("per_column", True),
                       temperature=spec.option("temperature"),
                       elapsed=_elapsed_since_calibration(card.drift, spec.option("elapsed"), spec.option("uptime")))


def _elapsed_since_calibration(drift: Any, elapsed: float | None, uptime: float | None) -> float | None:
    """Seconds after the calibration's middle, from ``#elapsed=`` or from ``#uptime=`` on the device's clock.

    Raises:
        ConfigError: Both given; ``#uptime=`` with a card whose device reported no clock, or before its
            calibration's uptime (the device restarted since: its clock no longer counts from the same
            power-up).
    """
    if uptime is None:
        return elapsed
    if elapsed is not None:
        raise ConfigError("twin: give #elapsed= (since the calibration) or #uptime= (the device's clock), not both")
    if drift is None or drift.uptime <= 0:
        raise ConfigError("twin: #uptime= needs a card whose calibration recorded the device's clock (it did not); "
                          "give #elapsed= (time since the calibration) instead")
    if uptime < drift.uptime:
        raise ConfigError(f"twin: #uptime={uptime:g} s is before the calibration's {drift.uptime:.6g} s on the "
                          f"device's clock (restarted since?); calibrate again, or give #elapsed=")
    return uptime - drift.uptime


def _warn_if_drift_cannot_say(drift: Any, temperature: float | None, elapsed: float | None) -> None:
    """Warn when ``#temperature=`` or ``#elapsed=`` asks for a drift the card does not have (they would do
    nothing), or ``#elapsed=`` reaches further than the card's straight line was fitted over (one run length:
    where `hil.calibration.job.check` stops carrying it)."""
    import warnings

    missing = []
    if temperature is not None and (drift is None or drift.span <= 0):
        missing.append("temperature")
    if elapsed is not None and (drift is None or not (drift.offset_per_second_se > 0
                                                      or drift.sigma_add_per_second_se > 0)):
        missing.append("time")
    if missing:
        warnings.warn(f"twin: the card has no drift with {' or '.join(missing)} (its calibration saw none), so "
                      f"#{'/'.join('elapsed' if m == 'time' else m for m in missing)}= changes nothing; calibrate "
                      f"over a run where the device drifts to reproduce it", RuntimeWarning, stacklevel=3)
    elif elapsed is not None and drift.duration > 0 and abs(elapsed) > drift.duration:
        warnings.warn(f"twin: #elapsed={elapsed:g} carries the card's time drift {abs(elapsed) / drift.duration:.3g}× "
                      f"further than the {drift.duration:.3g} s it was fitted over, as a straight line; calibrate "
                      f"again nearer that time to know the device there", RuntimeWarning, stacklevel=3)
