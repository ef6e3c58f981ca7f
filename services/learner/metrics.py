"""Prequential quality of predictions: each one scored against the outcome that followed it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

CLIP = 1e-15  # a confident wrong prediction costs much, not infinitely much


@dataclass(frozen=True)
class Bucket:
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


class PrequentialMetrics:
    """Over the last `window` predictions, or all of them when `window` is None."""

    def __init__(self, window: int | None = 1000, buckets: int = 10) -> None:
        self.pairs: deque[tuple[float, bool]] = deque(maxlen=window)
        self.buckets = buckets
        self.seen = 0

    def add(self, probability: float, success: bool) -> None:
        self.pairs.append((probability, bool(success)))
        self.seen += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        p = np.fromiter((p for p, _ in self.pairs), dtype=float, count=len(self.pairs))
        y = np.fromiter((y for _, y in self.pairs), dtype=float, count=len(self.pairs))
        return p, y

    def summary(self) -> dict[str, float]:
        """Accuracy (success predicted above 0.5), log loss, Brier score, calibration error, and
        ROC AUC when both outcomes occur."""
        if not self.pairs:
            return {"count": 0.0}
        p, y = self.arrays()
        clipped = np.clip(p, CLIP, 1.0 - CLIP)
        result = {
            "count": float(len(p)),
            "base_rate": float(y.mean()),
            "accuracy": float(((p > 0.5) == (y == 1.0)).mean()),
            "log_loss": float(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean()),
            "brier": float(((p - y) ** 2).mean()),
            "calibration_error": sum(b.count * abs(b.mean_predicted - b.observed_rate) for b in self.calibration())
            / len(p),
        }
        if (auc := roc_auc(p, y)) is not None:
            result["roc_auc"] = auc
        return result

    def calibration(self) -> list[Bucket]:
        p, y = self.arrays()
        index = np.minimum((p * self.buckets).astype(int), self.buckets - 1)
        result = []
        for b in range(self.buckets):
            mask = index == b
            if mask.any():
                result.append(
                    Bucket(
                        b / self.buckets,
                        (b + 1) / self.buckets,
                        int(mask.sum()),
                        float(p[mask].mean()),
                        float(y[mask].mean()),
                    )
                )
        return result


def roc_auc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Exact, ties counted half: the chance a random success was ranked above a random failure."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return None
    ranks = rankdata(p)
    return float((ranks[y == 1.0].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))
