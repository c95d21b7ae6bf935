import numpy as np
import pytest

from edge_ad.decision.drift import DRIFT, OK, UNAVAILABLE, WARMING_UP, DriftGuard, ks_p_value, ks_statistic


@pytest.mark.devtools  # scipy is the reference
def test_ks_statistic_and_p_value_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    for shift in (0.0, 0.3, 0.8):
        a, b = rng.normal(shift, 1, 300), rng.normal(0, 1, 40)
        ref = stats.ks_2samp(a, b, method="asymp")
        assert ks_statistic(a, b) == pytest.approx(ref.statistic, abs=1e-12)
        p = ks_p_value(ks_statistic(a, b), len(a), len(b))
        # different small-sample corrections: the same order of magnitude is what decisions need
        assert abs(np.log10(max(p, 1e-300)) - np.log10(max(ref.pvalue, 1e-300))) < 0.5


def _run(guard, samples):
    states = [guard.add(x) for x in samples]
    return [s for s in states if s is not None]


def test_unchanged_line_raises_no_alarm():
    rng = np.random.default_rng(1)
    guard = DriftGuard(rng.lognormal(-1.5, 0.3, 50))
    states = _run(guard, rng.lognormal(-1.5, 0.3, 5000))
    assert states[0].state == WARMING_UP
    assert all(s.state in (WARMING_UP, OK) for s in states)


def test_shifted_line_is_flagged_after_warm_up():
    rng = np.random.default_rng(2)
    guard = DriftGuard(rng.lognormal(-1.5, 0.3, 50), window=300, warmup=100)
    states = _run(guard, rng.lognormal(-1.5 + 0.5, 0.3, 300))  # scores up by ×1.65: light changed
    assert states[-1].state == DRIFT and states[-1].median_ratio > 1.4
    first_drift = next(i for i, s in enumerate(states) if s.state == DRIFT)
    assert (first_drift + 1) * guard.every >= guard.warmup  # never before the warm-up


def test_without_reference_scores_drift_is_unavailable():
    guard = DriftGuard([])
    assert guard.add(1.0) is None and guard.state.state == UNAVAILABLE
