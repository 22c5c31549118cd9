"""Self-binarisation analysis (paper 002): do a site's activations behave like two levels?

Under strong multiplicative noise, networks trained with that noise can push activations towards
two well-separated levels, which makes them insensitive to the noise. Test per site: replace the
site's output by a two-level quantisation (values above a threshold → the mean of those values,
the rest → the mean of the rest) and measure test accuracy. If accuracy barely drops, the site
is effectively binary. Thresholds tried: quantiles 0.1…0.9 of the site's activations on the
test set; the best is reported with the histogram of the activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hil.noisy_model import NoisyModel, SiteHook

QUANTILES = tuple(q / 10 for q in range(1, 10))


@dataclass(frozen=True)
class SiteBinarization:
    """Result for one site."""

    site: str
    clean_accuracy: float
    binarized_accuracy: float
    threshold: float
    low_level: float
    high_level: float
    histogram: tuple[tuple[float, ...], tuple[int, ...]]  # (bin edges, counts)

    @property
    def accuracy_drop(self) -> float:
        """Clean minus binarised accuracy."""
        return self.clean_accuracy - self.binarized_accuracy

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"site": self.site, "clean_accuracy": self.clean_accuracy,
                "binarized_accuracy": self.binarized_accuracy, "accuracy_drop": self.accuracy_drop,
                "threshold": self.threshold, "low_level": self.low_level, "high_level": self.high_level,
                "histogram": {"edges": list(self.histogram[0]), "counts": list(self.histogram[1])}}


def _site_values(noisy: NoisyModel, site: int, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def keep(y: torch.Tensor) -> torch.Tensor:
        captured.append(y.detach().flatten().cpu())
        return y

    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            noisy.forward_with_site_hook(inputs[start:start + batch_size], site, keep)
    return torch.cat(captured)


def _accuracy(noisy: NoisyModel, site: int, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int,
              hook: SiteHook) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            logits = noisy.forward_with_site_hook(inputs[start:start + batch_size], site, hook)
            correct += (logits.argmax(dim=1) == labels[start:start + batch_size]).sum().item()
    return correct / len(labels)


def binarization_test(noisy: NoisyModel, inputs: torch.Tensor, labels: torch.Tensor, *,
                      kinds: tuple[str, ...] = ("act",), batch_size: int = 500) -> list[SiteBinarization]:
    """Two-level quantisation test at every site of the given kinds (default: activations)."""
    noisy.eval()
    results = []
    clean = _accuracy(noisy, 0, inputs, labels, batch_size, lambda y: y)
    for site in noisy.sites:
        if site.kind not in kinds:
            continue
        values = _site_values(noisy, site.index, inputs, batch_size)
        sample = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:200_000]]
        counts, edges = np.histogram(values.numpy(), bins=60)
        best: tuple[float, float, float, float] | None = None
        for threshold in torch.quantile(sample, torch.tensor(QUANTILES)).unique().tolist():
            above = values > threshold
            if above.all() or not above.any():
                continue
            high, low = values[above].mean().item(), values[~above].mean().item()

            def quantise(y: torch.Tensor, t: float = threshold, lo: float = low, hi: float = high) -> torch.Tensor:
                return torch.where(y > t, torch.full_like(y, hi), torch.full_like(y, lo))

            accuracy = _accuracy(noisy, site.index, inputs, labels, batch_size, quantise)
            if best is None or accuracy > best[0]:
                best = (accuracy, threshold, low, high)
        if best is None:  # constant activations: nothing to quantise
            best = (clean, float(values[0]), float(values[0]), float(values[0]))
        results.append(SiteBinarization(site.name, clean, best[0], best[1], best[2], best[3],
                                        (tuple(map(float, edges)), tuple(map(int, counts)))))
    return results
