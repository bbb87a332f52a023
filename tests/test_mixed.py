"""The mixed model of paired differences (``srlib.mixed``): REML against the closed form of
a balanced design, its p-value's size on simulated null studies, and the power of a design
against a noncentral-t reference value."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from srlib import mixed


def _study(rng, n_images, n_seeds, sd=(1.0, 0.5, 0.3), mu=0.0):
    """Balanced paired differences of a crossed design: values, image and seed labels."""
    u = rng.normal(0, sd[0], n_images)[:, None]
    v = rng.normal(0, sd[1], n_seeds)[None, :]
    d = mu + u + v + rng.normal(0, sd[2], (n_images, n_seeds))
    images, seeds = np.meshgrid(np.arange(n_images), np.arange(n_seeds), indexing="ij")
    return d.ravel(), images.ravel(), seeds.ravel()


def _anova(d, n, k):
    """The balanced crossed design's mean squares: image, seed, residual."""
    y = d.reshape(n, k)
    g, ri, cj = y.mean(), y.mean(1), y.mean(0)
    ms_a = k * ((ri - g) ** 2).sum() / (n - 1)
    ms_b = n * ((cj - g) ** 2).sum() / (k - 1)
    ms_e = ((y - ri[:, None] - cj[None, :] + g) ** 2).sum() / ((n - 1) * (k - 1))
    return ms_a, ms_b, ms_e


@pytest.mark.parametrize("n,k", [(20, 3), (12, 6)])
def test_reml_is_the_closed_form_of_a_balanced_design(n, k):
    d, images, seeds = _study(np.random.default_rng(n + k), n, k, mu=0.7)
    ms_a, ms_b, ms_e = _anova(d, n, k)
    assert ms_a > ms_e and ms_b > ms_e  # positive moment estimates: REML equals them
    fit = mixed.fit_crossed(d, images, seeds)
    expect = {"sd_image": np.sqrt((ms_a - ms_e) / k), "sd_seed": np.sqrt((ms_b - ms_e) / n),
              "sd_residual": np.sqrt(ms_e), "mean": d.mean(),
              "se": np.sqrt((ms_a + ms_b - ms_e) / (n * k)),
              "df": (ms_a + ms_b - ms_e) ** 2 / (ms_a ** 2 / (n - 1) + ms_b ** 2 / (k - 1)
                                                 + ms_e ** 2 / ((n - 1) * (k - 1)))}
    for name, value in expect.items():
        assert getattr(fit, name) == pytest.approx(value, rel=1e-6, abs=1e-9), name
    assert (fit.n, fit.n_images, fit.n_seeds) == (n * k, n, k)


def test_a_component_at_zero_and_missing_values():
    rng = np.random.default_rng(3)
    d, images, seeds = _study(rng, 15, 3, sd=(1.0, 0.0, 0.3))
    d[4] = np.nan  # dropped, as the bootstrap drops it
    fit = mixed.fit_crossed(d, images, seeds)
    assert fit.n == 44 and np.isfinite(fit.p) and fit.sd_seed < 0.2
    one = mixed.fit_crossed(*_study(rng, 10, 1))
    assert one.sd_seed == 0 and one.df == pytest.approx(9, rel=1e-6)  # images alone


@pytest.mark.parametrize("k", [3, 6])
def test_p_value_holds_its_size_on_simulated_null_studies(k):
    rng = np.random.default_rng(k)
    p = np.array([mixed.fit_crossed(*_study(rng, 15, k, sd=(1.0, 0.5, 0.5))).p
                  for _ in range(300)])
    rate = float((p < 0.05).mean())
    print(f"{k} seeds: {rate:.3f} of 300 null studies rejected at 5%")
    assert 0.02 <= rate <= 0.09


def test_power_matches_the_noncentral_t_reference():
    # R: power.t.test(n = 20, delta = 1, sd = 1) (two samples) -> power = 0.8689528:
    # noncentrality 1 / sqrt(2 / 20), 38 degrees of freedom (R counts the upper tail only)
    assert mixed.t_power(np.sqrt(10), 38) == pytest.approx(0.8689528, abs=2e-6)
    # no seed or residual variance: the one-sample t test of the image means
    assert mixed.design_power(0.5, 1.0, 0.0, 0.0, 30, 2) == pytest.approx(
        mixed.t_power(0.5 * np.sqrt(30), 29), rel=1e-9)


def test_seeds_for_power_is_the_fewest_that_reach_it():
    fit = mixed.MixedFit(mean=-1.0, se=0, df=0, p=0, sd_image=1.0, sd_seed=1.0,
                         sd_residual=0.5, n=0, n_images=60, n_seeds=3)
    k = mixed.seeds_for_power(fit)
    power = [mixed.design_power(-1.0, 1.0, 1.0, 0.5, 60, s) for s in (k - 1, k)]
    print(f"seeds per side: {k}; power at {k - 1}, {k}: {power[0]:.3f}, {power[1]:.3f}")
    assert k >= 3 and power[0] < 0.8 <= power[1]
    assert mixed.seeds_for_power(replace(fit, mean=0.0)) is None
