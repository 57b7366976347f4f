"""Intervals and paired tests against published worked examples and hand-computed cases."""

import numpy as np
import pytest
from scipy.stats import binomtest

from keras_exercises.significance import (
    bootstrap_mean_interval,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_worked_examples(successes, n, low, high):
    got = wilson_interval(successes / n, n, 0.95)
    assert got == pytest.approx((low, high), abs=5e-5)
    # and scipy's own Wilson interval, where the count is whole
    scipy_ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    assert got == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-12)


def test_wilson_interval_of_a_mean_over_seeds_lies_between_its_neighbours():
    # 178.5 of 200 right on average: between the intervals of 178 and 179
    low, high = wilson_interval(178.5 / 200, 200, 0.95)
    assert wilson_interval(178 / 200, 200, 0.95)[0] < low < wilson_interval(179 / 200, 200, 0.95)[0]
    assert (
        wilson_interval(178 / 200, 200, 0.95)[1] < high < wilson_interval(179 / 200, 200, 0.95)[1]
    )
    assert wilson_interval(0.9, 200, 0.99)[0] < wilson_interval(0.9, 200, 0.95)[0]


def test_mcnemar_exact_matches_the_published_example_and_hand_counts():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: 1 and 7 discordant
    # pairs, exact conditional McNemar p = 0.070 (= 2 * 9/256)
    a = np.array([True] * 1 + [False] * 7 + [True] * 20)
    b = np.array([False] * 1 + [True] * 7 + [True] * 20)
    assert mcnemar_exact(a, b) == pytest.approx(18 / 256)
    assert mcnemar_exact(b, a) == pytest.approx(18 / 256)  # symmetric
    # 1 and 5 discordant: 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * (1 + 6) / 64 by hand
    a = np.array([True, False, False, False, False, False, True, False])
    b = np.array([False, True, True, True, True, True, True, False])
    assert mcnemar_exact(a, b) == pytest.approx(14 / 64)
    assert mcnemar_exact(a, a) == 1.0  # no discordant pair: no evidence of a difference
    # all 12 discordant pairs one way: 2 / 4096
    assert mcnemar_exact(np.zeros(12, bool), np.ones(12, bool)) == pytest.approx(2 / 4096)


def test_bootstrap_interval_covers_the_mean_is_seeded_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small, large = rng.exponential(0.01, 100), rng.exponential(0.01, 2000)
    low, high = bootstrap_mean_interval(small, 0.95, 2000, seed=0)
    assert low < small.mean() < high
    assert bootstrap_mean_interval(small, 0.95, 2000, seed=0) == (low, high)  # byte for byte
    assert bootstrap_mean_interval(small, 0.95, 2000, seed=1) != (low, high)
    large_low, large_high = bootstrap_mean_interval(large, 0.95, 2000, seed=0)
    assert large_high - large_low < high - low
    # for a roughly normal mean, close to the textbook 1.96 standard errors
    se = small.std(ddof=1) / np.sqrt(len(small))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_paired_bootstrap_tells_a_real_shift_from_noise():
    rng = np.random.default_rng(2)
    a = rng.exponential(0.01, 300)
    shifted = a + 0.002 + rng.normal(0, 0.0005, 300)
    assert paired_bootstrap(a, shifted, 2000, seed=0) < 0.01
    noisy = a + rng.normal(0, 0.0005, 300)
    noisy -= noisy.mean() - a.mean()  # exactly the same mean
    assert paired_bootstrap(a, noisy, 2000, seed=0) > 0.5
    assert paired_bootstrap(a, a, 2000, seed=0) == 1.0
    assert paired_bootstrap(a, shifted, 2000, seed=0) == paired_bootstrap(a, shifted, 2000, seed=0)
