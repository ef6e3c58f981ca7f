"""The estimators against values worked out by hand."""

import numpy as np
import pytest

from bench.evaluation.whatif.estimators import Logged, effective_sample_size, estimate, point_estimates


def three_decisions() -> Logged:
    # w = target / logged = [2, 2, 0]
    return Logged(
        reward=np.array([1.0, 0.0, 1.0]),
        logged=np.array([0.5, 0.25, 1.0]),
        target=np.array([1.0, 0.5, 0.0]),
        predicted=np.array([0.8, 0.4, 0.6]),
        expected=np.array([0.8, 0.3, 0.5]),
    )


def test_ips_snips_and_dr_by_hand():
    ips, snips, dr = point_estimates(three_decisions())
    assert ips[0] == pytest.approx(2 / 3)  # (2·1 + 2·0 + 0·1) / 3
    assert snips[0] == pytest.approx(0.5)  # 2 / (2 + 2 + 0)
    assert dr[0] == pytest.approx(0.4)  # mean(0.8 + 2·0.2, 0.3 + 2·(−0.4), 0.5 + 0) = 1.2 / 3


def test_effective_sample_size_by_hand():
    assert effective_sample_size(three_decisions()) == pytest.approx(16 / 8)  # (2+2+0)² / (4+4+0)


def test_on_policy_every_estimate_is_the_logged_mean_and_the_sample_is_whole():
    rewards = np.array([1.0, 0.0, 1.0, 1.0])
    same = np.array([0.3, 0.6, 0.2, 0.9])
    result = estimate(Logged(rewards, same, same, np.full(4, 0.5), np.full(4, 0.5)), resamples=200)
    assert result.ips.value == pytest.approx(0.75) and result.snips.value == pytest.approx(0.75)
    assert result.dr.value == pytest.approx(0.75)
    assert result.effective_sample_size == pytest.approx(4.0)
    assert result.snips.low <= 0.75 <= result.snips.high


def test_identical_decisions_leave_no_room_in_the_interval():
    ones = np.ones(5)
    result = estimate(Logged(ones, ones * 0.5, ones * 0.5, ones * 0.9, ones * 0.9), resamples=50)
    assert (result.ips.low, result.ips.value, result.ips.high) == pytest.approx((1.0, 1.0, 1.0))


def test_the_interval_covers_the_truth_of_a_known_bandit():
    # Three arms of success 0.2, 0.5, 0.8 logged uniformly; the target always takes the best.
    rng = np.random.default_rng(1)
    n = 3000
    arm = rng.integers(0, 3, n)
    reward = (rng.random(n) < np.array([0.2, 0.5, 0.8])[arm]).astype(float)
    target = (arm == 2).astype(float)
    result = estimate(Logged(reward, np.full(n, 1 / 3), target, np.full(n, 0.5), np.full(n, 0.5)), resamples=300)
    for interval in (result.ips, result.snips, result.dr):
        assert interval.covers(0.8) and interval.high - interval.low < 0.15
    assert result.effective_sample_size == pytest.approx(target.sum(), rel=1e-9)


def test_a_zero_logged_probability_is_refused():
    with pytest.raises(ValueError, match="above 0"):
        Logged(np.ones(1), np.zeros(1), np.ones(1), np.ones(1), np.ones(1))
