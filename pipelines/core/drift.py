"""Drift statistics on binned counts: PSI, Jensen-Shannon, normed Wasserstein, the G-test and Holm's step-down.

Every function takes counts over the same bins (the reference's bins, so windows add up exactly) and returns plain
floats. The definitions follow Evidently's documented stattests (checked on hand-computed examples in
``tests/unit/test_drift.py``):

- PSI = sum((p - q) * ln(p / q)) over bins, with empty bins set to 1e-4 (or the smallest non-zero share / 1e6 when
  that is smaller), as Evidently's ``get_binned_data(..., feel_zeroes=True)``; drift by convention at >= 0.1.
- Jensen-Shannon distance = sqrt((KL(p||m) + KL(q||m)) / 2), m = (p + q) / 2, natural log (``scipy.spatial.distance
  .jensenshannon``), on the shares without zero-filling; in [0, sqrt(ln 2)].
- normed Wasserstein = W1(reference, current) / max(std(reference), 0.001), std with ddof 0; here each bin's mass
  sits at its mean value, so it is exact when every bin holds one value and otherwise within a bin's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# scipy.special, not scipy.stats: importing scipy.stats alone takes about 1 s, a fifth of the monitor's budget
from scipy import special
from scipy.spatial.distance import jensenshannon

ArrayLike = Sequence[float] | np.ndarray

PSI_EPS = 1e-4


def shares(counts: ArrayLike) -> np.ndarray:
    """Counts as proportions (all zero when the total is zero)."""
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    nonzero = p[p > 0]
    low = float(nonzero.min()) if nonzero.size else PSI_EPS
    eps = low / 1e6 if low <= PSI_EPS else PSI_EPS
    return np.where(p == 0, eps, p)


def psi(reference: ArrayLike, current: ArrayLike) -> float:
    """Population stability index of two count vectors over the same bins (>= 0; 0.1 is the usual alarm)."""
    p, q = _fill_zeros(shares(reference)), _fill_zeros(shares(current))
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(reference: ArrayLike, current: ArrayLike) -> float:
    """Jensen-Shannon distance (natural log) of two count vectors over the same bins."""
    p, q = shares(reference), shares(current)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    return float(jensenshannon(p, q))


def wasserstein_normed(
    ref_values: ArrayLike, ref_counts: ArrayLike, cur_values: ArrayLike, cur_counts: ArrayLike, ref_std: float
) -> float:
    """W1 between two weighted samples (values with counts) divided by max(ref_std, 0.001)."""
    rc, cc = np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)
    if rc.sum() == 0 or cc.sum() == 0:
        return 0.0
    rv, cv = np.asarray(ref_values, dtype=float), np.asarray(cur_values, dtype=float)
    distance = wasserstein_1d(rv[rc > 0], cv[cc > 0], rc[rc > 0], cc[cc > 0])
    return float(distance / max(ref_std, 0.001))


def wasserstein_1d(u: np.ndarray, v: np.ndarray, u_weights: np.ndarray, v_weights: np.ndarray) -> float:
    """First Wasserstein distance of two weighted 1-D samples: the area between their CDFs,
    integral |F_u(x) - F_v(x)| dx. Source: ``scipy.stats.wasserstein_distance`` (its ``_cdf_distance`` with p = 1),
    computed the same way; tests/unit/test_drift.py checks the two agree on random samples."""
    values = np.sort(np.concatenate([u, v]))
    deltas = np.diff(values)
    cdfs = []
    for x, w in ((u, u_weights), (v, v_weights)):
        order = np.argsort(x)
        cumulative = np.concatenate([[0.0], np.cumsum(w[order])])
        cdfs.append(cumulative[np.searchsorted(x[order], values[:-1], side="right")] / cumulative[-1])
    return float(np.sum(np.abs(cdfs[0] - cdfs[1]) * deltas))


def pooled(
    reference: np.ndarray, current: np.ndarray, min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pool the bins whose expected window count is below ``min_expected`` into one (Cochran's rule), so the
    chi-square approximation of the G statistic holds for small windows; bins empty in both are dropped."""
    keep = (reference + current) > 0
    reference, current = reference[keep], current[keep]
    expected = shares(reference) * current.sum()
    small = expected < min_expected
    if small.sum() <= 1:
        return reference, current
    ref = np.append(reference[~small], reference[small].sum())
    cur = np.append(current[~small], current[small].sum())
    return ref, cur


def g_test(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """G-test of homogeneity (likelihood ratio) of a 2 x k table: reference counts vs window counts.

    Returns (G, p-value). Sparse bins are pooled first (:func:`pooled`); with fewer than two bins left there is
    nothing to test (G 0, p 1). Source: Sokal and Rohlf, Biometry, ch. 17; ``scipy.stats.chi2_contingency`` with
    ``lambda_="log-likelihood"``.
    """
    ref, cur = pooled(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    if ref.size < 2 or ref.sum() == 0 or cur.sum() == 0:
        return 0.0, 1.0
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    observed = table > 0
    g = 2.0 * float(np.sum(table[observed] * np.log(table[observed] / expected[observed])))
    dof = table.shape[1] - 1
    return g, float(special.chdtrc(dof, g))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): controls the family-wise error rate at any alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def wilson(successes: float, n: float, z: float = 1.959963984540054) -> tuple[float | None, float | None]:
    """Wilson score interval for a proportion (Wilson 1927); (None, None) when n is 0."""
    if n <= 0:
        return None, None
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
