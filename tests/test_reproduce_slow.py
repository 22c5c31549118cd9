"""Paper checks (slow): the Walking Noise results `hil reproduce` must show on mnist5k with the default data.

Default preprocessing (the paper's [0, 1] pixels) and the default protocol (150 epochs on mnist5k). Each test
is a few minutes on 2 cores; run with ``pytest -m slow tests/test_reproduce_slow.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.reproduce.experiments import ReproContext, _training_walk, _walk, guided_repetitions, trained
from hil.walking.grid import log_grid

pytestmark = pytest.mark.slow


def test_table3_guided_beats_uniform_by_8_points_for_the_mlp_without_bn(tmp_path: Path) -> None:
    table = guided_repetitions(ReproContext(out=tmp_path, models=("mlp",)))
    row = next(r for r in table.rows if r.quantity == "MLP without BN: guided − uniform (points)")
    # Measured 2026-12-02 at 30 epochs: +11.2 [+10.2, +12.3] (paper, full MNIST: +18.9).
    assert row.ours >= 8 and row.low > 0


def test_noisy_training_doubles_the_global_additive_mu_of_the_mlp_without_bn(tmp_path: Path) -> None:
    ctx = ReproContext(out=tmp_path)
    inference = _walk(ctx, trained(ctx, ctx.config("mlp", False)), "add", "global", 5).sites[0].fit
    noisy = _training_walk(ctx, ctx.config("mlp", False), "add", "global", 2, log_grid(1e-2, 1e2, 9)).sites[0].fit
    assert inference.status == noisy.status == "ok"
    # Measured 2026-12-02 (150 epochs): 0.605 inference-only, 1.46 noisy-trained, 2.4× (paper, MNIST: 3.6×).
    # At 10 epochs (the check this replaces) noisy training gained nothing on [0, 1] pixels: 0.887 vs 0.915.
    assert noisy.mu / inference.mu >= 2.0
    assert noisy.mu_low > inference.mu_high


def test_the_input_site_of_the_mlp_is_the_least_robust(tmp_path: Path) -> None:
    ctx = ReproContext(out=tmp_path)
    report = _walk(ctx, trained(ctx, ctx.config("mlp", False)), "add", "all", 5)
    mus = {site.site: site.fit.mu for site in report.sites if site.fit.status == "ok"}
    assert min(mus, key=mus.__getitem__) == "0:input"
