"""Figures of the hardware studies: a placement walk's drop per layer, and device vs twin vs Gaussian accuracy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from hil.studies.placement import PlacementReport
from hil.walking.plots import PLOT_STYLE, save_figure


def plot_placement(reports: Sequence[PlacementReport], stem: Path) -> list[Path]:
    """Accuracy drop per layer on the hardware with its 95 % interval, one bar per report side by side.

    Args:
        reports: Placement walks of one network (e.g. on the device and on its twin), same layers.
        stem: Output path without suffix (PNG and SVG are written).

    Returns:
        The written paths.
    """
    layers = [row.layer for row in reports[0].layers]
    width = 0.8 / len(reports)
    with plt.rc_context(PLOT_STYLE):
        figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(layers) + 1.5), 3.0))
        positions = np.arange(len(layers))
        for index, report in enumerate(reports):
            rows = {row.layer: row for row in report.layers}
            drops = np.array([rows[layer].drop for layer in layers]) * 100
            low = drops - np.array([rows[layer].low for layer in layers]) * 100
            high = np.array([rows[layer].high for layer in layers]) * 100 - drops
            shift = (index - (len(reports) - 1) / 2) * width
            axis.bar(positions + shift, drops, width=width, label=report.backend.split("#")[0].split(":")[0])
            axis.errorbar(positions + shift, drops, yerr=[low, high], fmt="none", ecolor="0.1", lw=1, capsize=2)
        axis.set_xticks(positions, layers, rotation=30, ha="right")
        axis.set_ylabel("accuracy drop, points (95 % interval)")
        axis.set_title(f"each layer alone on the hardware (clean {reports[0].clean:.1%})", fontsize=9)
        if len(reports) > 1:
            axis.legend(frameon=False)
        figure.tight_layout()
        return save_figure(figure, stem)


def plot_fidelity(levels: Mapping[str, Sequence[Mapping[str, float]]], stem: Path) -> list[Path]:
    """Accuracy vs the chip's σa on the device, on the twin and under the Gaussian mapping, one panel per model.

    Args:
        levels: Per model, rows with ``sigma_add`` and the ``device``, ``twin``, ``gaussian`` accuracies
            (means) and their ``*_std`` draw-to-draw spreads.
        stem: Output path without suffix.

    Returns:
        The written paths.
    """
    with plt.rc_context(PLOT_STYLE):
        figure, axes = plt.subplots(1, len(levels), figsize=(3.4 * len(levels), 2.8), squeeze=False, sharey=True)
        for axis, (model, rows) in zip(axes[0], levels.items(), strict=True):
            sigmas = [row["sigma_add"] for row in rows]
            for key, style in (("device", "o-"), ("twin", "s--"), ("gaussian", "^:")):
                axis.errorbar(sigmas, [row[key] for row in rows], yerr=[row[f"{key}_std"] for row in rows],
                              fmt=style, ms=3.5, lw=1, capsize=2, label=key)
            axis.set_title(model, fontsize=9)
            axis.set_xlabel("chip σa (device units)")
            axis.set_ylim(0, 1.0)
        axes[0, 0].set_ylabel("test accuracy")
        axes[0, 0].legend(frameon=False)
        figure.tight_layout()
        return save_figure(figure, stem)
