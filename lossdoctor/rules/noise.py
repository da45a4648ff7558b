"""The noise model every trend decision uses (docs/judgement.md states it for users).

A change in a series counts only when it is larger than the series' own noise as well as larger than a
relative threshold: a 30 % rise of an eval loss that jitters by 40 % from one eval to the next is not
evidence of anything. The noise is estimated from the series itself, robustly (median absolute deviations,
so one spike does not inflate it):

- for a densely logged series (train loss): the robust spread of its residuals around a centred rolling
  median (:func:`residual_noise`);
- for a sparse one (evals): the robust spread of its second differences, which cancel a linear trend, so a
  steadily falling curve is not mistaken for a noisy one (:func:`point_noise`).

Pure numpy; no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from lossdoctor.rules.rolling import median as median_of
from lossdoctor.rules.rolling import sliding_medians

#: MAD -> standard deviation for normally distributed noise
MAD_TO_SIGMA = 1.4826


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of the finite values; NaN when there are none."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan
    return float(MAD_TO_SIGMA * median_of(np.abs(v - median_of(v))))


def point_noise(values: np.ndarray) -> float:
    """Per-point noise of a short series (e.g. evals) from its second differences: for independent noise
    of deviation s, x[i+1] - 2 x[i] + x[i-1] has deviation s·√6 and any linear trend cancels. NaN with fewer
    than 4 finite points (two second differences: too few to say anything)."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if len(v) < 4:
        return math.nan
    d2 = v[2:] - 2.0 * v[1:-1] + v[:-2]
    # the spread of d2 around zero (not around its median: a curving series has a non-zero median d2 and that
    # curvature is signal, but one-sided curvature is rare in a noise estimate of a few points; zero-centred
    # is the conservative, larger estimate)
    return float(MAD_TO_SIGMA * median_of(np.abs(d2)) / math.sqrt(6.0))


def residual_noise(values: np.ndarray, span: int | None = None) -> float:
    """Noise of a densely logged series: the robust spread of its residuals around a centred rolling median
    of ``span`` points (default: 5 % of the points, at least 5). NaN with fewer than 5 finite points."""
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 5:
        return math.nan
    w = max(5, int(span or round(0.05 * n)))
    w = min(w | 1, n if n % 2 else n - 1)  # odd, centred
    centre = sliding_medians(v, w, w // 2, w // 2)  # centred, cut at both ends
    return robust_sigma(v - centre)


def level_noise(values: np.ndarray) -> float:
    """The noise of one point of ``values``: residual noise for long series (>= 20 points), point noise
    for short ones."""
    v = np.asarray(values, dtype="float64")
    return residual_noise(v) if np.isfinite(v).sum() >= 20 else point_noise(v)


def exceeds(change: float, noise: float, z: float) -> bool | None:
    """Whether |change| > z x noise; None when the noise is unknown (too few points to estimate it)."""
    if not math.isfinite(noise):
        return None
    return abs(change) > z * noise


def normal_confidence(z: float) -> float:
    """One-sided normal probability that a change of ``z`` noise deviations is real (Φ(z)), capped at 0.99."""
    if not math.isfinite(z):
        return 0.99 if z > 0 else 0.5
    return float(min(0.99, 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))))


def sample_factor(n: int, enough: int) -> float:
    """How much a conclusion from ``n`` points is worth next to one from ``enough``: n/enough, at most 1."""
    return float(min(1.0, max(0.0, n / float(enough)))) if enough > 0 else 1.0
