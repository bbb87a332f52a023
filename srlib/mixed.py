"""The linear mixed model of paired differences, and the seeds a design needs (its power).

Beside the bootstrap of ``srlib.stats`` (which gives every verdict), each pooled comparison
over several seeds is also fitted as a linear mixed model, the analysis a statistician
would write down for this design. A paired difference ``d`` (``a - b`` on one test image
under one training seed) is

    d[i, s] = mu + u[i] + v[s] + e[i, s],
    u ~ N(0, sd_image^2),  v ~ N(0, sd_seed^2),  e ~ N(0, sd_residual^2),

with crossed random effects for the image and the seed (every seed sees the same images).
``fit_crossed`` estimates the variance components by REML (Patterson & Thompson 1971;
Fisher scoring, components kept at or above 0), ``mu`` by generalised least squares,
and tests ``mu = 0`` with Student's t on Satterthwaite's degrees of freedom (Satterthwaite
1946; the approximation of lmerTest, Kuznetsova et al. 2017, J. Stat. Softw. 82(13), with
the expected information). On balanced data with positive components this is the
classical ANOVA analysis: the REML components are the mean squares' moment estimates and
the degrees of freedom those of ``(MS_image + MS_seed - MS_residual)``
(``tests/test_mixed.py`` checks both to 1e-6).

``seeds_for_power`` turns a pilot's components into a design: the number of seeds per side
at which the test of the pilot's effect reaches a power (80%) at a level (5%), from the
noncentral t (the expected mean squares of the balanced design give the standard error
and the degrees of freedom). The effect is the pilot's estimate, so the figure is as
uncertain as the pilot; say so where it is quoted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import nct
from scipy.stats import norm as normal
from scipy.stats import t as student_t

MAX_SEEDS = 50  # seeds_for_power gives up above this many seeds per side


@dataclass(frozen=True)
class MixedFit:
    """A fitted model of paired differences: ``mean`` (mu, the difference's unit), its
    standard error ``se``, Satterthwaite's ``df``, the two-sided ``p`` of mu = 0, the
    variance components as standard deviations, and the counts that went in."""

    mean: float
    se: float
    df: float
    p: float
    sd_image: float
    sd_seed: float
    sd_residual: float
    n: int
    n_images: int
    n_seeds: int


def _indicators(labels) -> np.ndarray:
    """(n, k) 0/1 matrix of one label per value (k distinct labels, in first-seen order)."""
    _, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    z = np.zeros((len(inverse), inverse.max() + 1 if len(inverse) else 0))
    z[np.arange(len(inverse)), inverse] = 1.0
    return z


class _Reml:
    """The REML quantities of ``y = mu 1 + Za u + Zb v + e`` at variances ``theta =
    (image, seed, residual)``: ``V = theta_a Za Za' + theta_b Zb Zb' + theta_e I`` dense
    (a study's pooled comparison has a few hundred differences), every trace through
    ``Z`` (``tr(P Za Za' P Zb Zb') = |Za' P Zb|^2``)."""

    def __init__(self, y: np.ndarray, za: np.ndarray, zb: np.ndarray):
        self.y, self.z = y, [za, zb]

    def at(self, theta: np.ndarray) -> _Reml:
        za, zb = self.z
        v = theta[0] * (za @ za.T) + theta[1] * (zb @ zb.T)
        v[np.diag_indices_from(v)] += theta[2]
        c = np.linalg.cholesky(v)
        ci = np.linalg.inv(c)
        vinv = ci.T @ ci
        w = vinv.sum(1)  # V^-1 1
        self.info_mu = float(w.sum())  # 1' V^-1 1
        self.p = vinv - np.outer(w, w) / self.info_mu
        self.py = self.p @ self.y
        self.w = w
        self.mu = float(w @ self.y) / self.info_mu
        self.loglik = -0.5 * (2 * np.log(np.diag(c)).sum() + math.log(self.info_mu)
                              + float(self.y @ self.py))
        return self

    def score_info(self) -> tuple[np.ndarray, np.ndarray]:
        """The REML score and expected information in theta."""
        p, (za, zb) = self.p, self.z
        pz = [p @ za, p @ zb]
        zpz = [[z.T @ q for q in pz] for z in (za, zb)]
        trace = [float((za * pz[0]).sum()), float((zb * pz[1]).sum()), float(np.trace(p))]
        quad = [float(((z.T @ self.py) ** 2).sum()) for z in (za, zb)]
        quad.append(float(self.py @ self.py))
        score = 0.5 * (np.array(quad) - np.array(trace))
        info = np.empty((3, 3))
        for i in range(2):
            for j in range(2):
                info[i, j] = 0.5 * float((zpz[i][j] ** 2).sum())
            info[i, 2] = info[2, i] = 0.5 * float((pz[i] ** 2).sum())
        info[2, 2] = 0.5 * float((p ** 2).sum())
        return score, info

    def var_grad(self) -> np.ndarray:
        """d Var(mu) / d theta: ``Var(mu)^2 w' (dV/dtheta) w`` with ``w = V^-1 1``."""
        var = 1.0 / self.info_mu
        return var ** 2 * np.array([float(((z.T @ self.w) ** 2).sum()) for z in self.z]
                                   + [float(self.w @ self.w)])


def _start(y: np.ndarray, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """Moment starting values: the spread of image means, of seed means, and what is left."""
    def spread(z):
        m = (z.T @ y) / np.maximum(z.sum(0), 1)
        return float(np.var(m)) if z.shape[1] > 1 else 0.0
    total = float(np.var(y)) or 1.0
    a, b = spread(za), spread(zb)
    return np.array([max(a, 1e-3 * total), max(b, 1e-3 * total),
                     max(total - a - b, 1e-2 * total)])


def _reml(y: np.ndarray, za: np.ndarray, zb: np.ndarray, iters: int = 200
          ) -> tuple[_Reml, np.ndarray, np.ndarray]:
    """Fisher scoring with step halving; a component that would go below 0 is held at 0
    while its score points down. Returns the model at the estimate, theta, and which
    components are free (not at the boundary)."""
    m = _Reml(y, za, zb)
    theta = _start(y, za, zb)
    floor = 1e-12 * float(np.var(y))  # the residual variance stays positive: V invertible
    # a factor with one level, or one value per level (one seed: images are the residual),
    # has no component of its own
    can = [1 < z.shape[1] < len(y) for z in (za, zb)] + [True]
    theta[~np.array(can)] = 0.0
    cur = m.at(theta).loglik
    for _ in range(iters):
        score, info = m.score_info()
        # a component at 0 whose score points down stays out of the step
        free = np.array([f and (t > 0 or s > 0) for f, t, s in zip(
            can, theta, score, strict=True)])
        step = np.zeros(3)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
        scale, new, ll = 1.0, theta, cur
        for _ in range(40):
            new = np.maximum(theta + scale * step, 0.0)
            new[2] = max(new[2], floor)
            ll = m.at(new).loglik
            if ll >= cur - 1e-12 * abs(cur):
                break
            scale /= 2
        done = np.all(np.abs(new - theta) <= 1e-11 * max(1.0, float(np.abs(theta).max())))
        theta, cur = new, ll
        if done:
            break
    m.at(theta)
    free = free & (theta > 0)
    return m, theta, free


def fit_crossed(diff, images, seeds) -> MixedFit:
    """REML fit of ``diff`` (paired differences, any unit) with crossed random effects for
    ``images`` and ``seeds`` (one label each per value); NaN and infinite values are
    dropped first. With one seed the seed component is 0 (not estimable) and the model is
    images alone. Needs at least 3 values and 2 images; fewer give NaN."""
    d = np.asarray(diff, dtype=float).ravel()
    keep = np.isfinite(d)
    y = d[keep]
    za = _indicators(np.asarray(images, dtype=object)[keep])
    zb = _indicators(np.asarray(seeds, dtype=object)[keep])
    n, ni, ns = len(y), za.shape[1], zb.shape[1]
    if n < 3 or ni < 2:
        return MixedFit(*(math.nan,) * 7, n, ni, ns)
    if np.ptp(y) == 0:  # every difference the same: no variance to estimate
        return MixedFit(float(y[0]), 0.0, math.inf, 0.0 if y[0] else 1.0, 0.0, 0.0, 0.0,
                        n, ni, ns)
    try:
        m, theta, free = _reml(y, za, zb)
    except np.linalg.LinAlgError:  # a singular design the bootstrap still handles
        return MixedFit(*(math.nan,) * 7, n, ni, ns)
    var = 1.0 / m.info_mu
    # Satterthwaite: var's gradient in theta, and theta's covariance (inverse information)
    _, info = m.score_info()
    grad = m.var_grad()
    cov = np.zeros((3, 3))
    cov[np.ix_(free, free)] = np.linalg.inv(info[np.ix_(free, free)])
    spread = float(grad @ cov @ grad)
    df = 2 * var ** 2 / spread if spread > 0 else math.inf
    se = math.sqrt(var)
    p = float(2 * student_t.sf(abs(m.mu) / se, df)) if se > 0 else (0.0 if m.mu else 1.0)
    sd = np.sqrt(theta)
    return MixedFit(m.mu, se, float(df), p, float(sd[0]), float(sd[1]), float(sd[2]),
                    n, ni, ns)


def design_power(effect: float, sd_image: float, sd_seed: float, sd_residual: float,
                 n_images: int, n_seeds: int, level: float = 0.95) -> float:
    """The power of the two-sided t test of a paired difference ``effect`` (its unit) over
    ``n_images`` x ``n_seeds`` (each seed of a on each seed's pairing of b), under the
    crossed model with these components: noncentral t on the balanced design's expected
    mean squares (standard error and Satterthwaite's degrees of freedom)."""
    n, k = int(n_images), int(n_seeds)
    if n < 2 or k < 1:
        raise ValueError(f"design_power: expected n_images >= 2 and n_seeds >= 1, got "
                         f"{n_images} and {n_seeds}")
    ms_a = k * sd_image ** 2 + sd_residual ** 2
    ms_e = sd_residual ** 2
    if k == 1:  # one run: the seed's draw is in every difference, and no df estimates it
        var = sd_image ** 2 / n + sd_seed ** 2 + sd_residual ** 2 / n
        df = float(n - 1)
    else:
        ms_b = n * sd_seed ** 2 + sd_residual ** 2
        var = (ms_a + ms_b - ms_e) / (n * k)
        den = ms_a ** 2 / (n - 1) + ms_b ** 2 / (k - 1) + ms_e ** 2 / ((n - 1) * (k - 1))
        df = (ms_a + ms_b - ms_e) ** 2 / den
    return t_power(effect / math.sqrt(var), df, level)


def t_power(noncentrality: float, df: float, level: float = 0.95) -> float:
    """The power of a two-sided t test at ``level`` with ``df`` degrees of freedom when the
    statistic is noncentral t with this noncentrality (both tails)."""
    q = float(student_t.ppf(0.5 + level / 2, df))
    power = float(nct.sf(q, df, noncentrality) + nct.cdf(-q, df, noncentrality))
    if not np.isfinite(power):  # scipy's nct fails far in the tail: the normal limit
        power = float(normal.sf(q - abs(noncentrality)))
    return power


def seeds_for_power(fit: MixedFit, power: float = 0.8, level: float = 0.95,
                    n_images: int | None = None) -> int | None:
    """The fewest seeds per side (2 or more) at which a study with ``fit``'s effect and
    components over ``n_images`` (default: the fit's) reaches ``power`` at ``level``;
    None above ``MAX_SEEDS`` or for a zero or NaN effect."""
    if not np.isfinite(fit.mean) or fit.mean == 0:
        return None
    n = n_images or fit.n_images
    for k in range(2, MAX_SEEDS + 1):
        if design_power(fit.mean, fit.sd_image, fit.sd_seed, fit.sd_residual, n, k,
                        level) >= power:
            return k
    return None
