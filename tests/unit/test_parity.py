"""The parity gate's comparison and tolerances on constructed outputs."""
import numpy as np

from edge_ad.parity import TOLERANCES, compare


def _outputs(scores):
    scores = np.asarray(scores, np.float32)
    return np.ones((len(scores), 4, 4), np.float32) * scores[:, None, None], scores


def test_identical_outputs_pass_at_fp32():
    ref = _outputs([0.2, 0.4, 0.9, 1.2])
    r = compare("torch", "fp32", ref, ref, threshold=0.5, scale=0.3, labels=np.array([0, 0, 1, 1]))
    assert r.passed and r.verdict_flips == 0 and r.max_score_diff_of_scale == 0 and r.auroc_reference == 1.0


def test_rounding_on_scores_near_zero_passes_though_it_is_large_relative_to_the_score():
    # the fresh-clone failure: good scores near zero, float32 rounding of 2e-6 is 2e-4 relative
    ref = _outputs([0.010, 0.012, 0.3, 0.02])
    moved = _outputs([0.010002, 0.012002, 0.3, 0.020003])
    r = compare("torch", "fp32", ref, moved, threshold=0.35, scale=0.33)
    assert r.max_rel_score_diff > 1e-4  # what the old gate refused
    assert r.passed and r.max_score_diff_of_scale < 1e-5


def test_fp32_refuses_a_real_difference_and_a_flip_beyond_rounding():
    ref = _outputs([0.2, 0.45, 0.9])
    moved = _outputs([0.2, 0.52, 0.9])  # 0.07 raw, 0.23 of the scale, and across the threshold
    r = compare("engine", "fp32", ref, moved, threshold=0.5, scale=0.3)
    assert not r.passed and r.verdict_flips == 1 and r.flips_beyond_noise == 1
    assert any("verdicts flip" in why for why in r.reasons)
    assert any("of the threshold scale" in why for why in r.reasons)


def test_an_image_at_the_threshold_may_fall_either_side_within_rounding():
    # calibration puts the highest good score a hair under the threshold: rounding may flip it
    ref = _outputs([0.2, 0.49999, 0.9])
    moved = _outputs([0.2, 0.50001, 0.9])
    r = compare("torch", "fp32", ref, moved, threshold=0.5, scale=0.3)
    assert r.verdict_flips == 1 and r.flips_beyond_noise == 0 and r.passed


def test_a_near_tie_may_swap_rank_but_a_real_swap_fails_auroc():
    labels = np.array([0, 0, 1, 1])
    ref = _outputs([0.1, 0.4001, 0.4, 0.9])  # a defect and a good part tie to rounding
    tie_swapped = _outputs([0.1, 0.3999, 0.4001, 0.9])
    r = compare("torch", "fp32", ref, tie_swapped, 0.5, 0.3, labels)
    assert r.auroc_reference != r.auroc_candidate and r.passed
    apart = _outputs([0.1, 0.3, 0.6, 0.9])
    swapped = _outputs([0.1, 0.6, 0.3, 0.9])  # a scale apart: a real ranking change
    r = compare("torch", "fp16", apart, swapped, 0.5, 0.3, labels)
    assert not r.passed and any("AUROC" in why for why in r.reasons)


def test_fp16_tolerates_small_drift_but_not_lost_ranking():
    ref = _outputs([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    close = _outputs([0.101, 0.199, 0.302, 0.79, 0.91, 1.0])
    assert compare("engine", "fp16", ref, close, 0.5, 0.3, labels).passed
    swapped = _outputs([0.1, 0.2, 0.85, 0.3, 0.9, 1.0])  # a defect now scores below a good part
    r = compare("engine", "fp16", ref, swapped, 0.5, 0.3, labels)
    assert not r.passed and r.auroc_candidate < 1.0


def test_nan_never_passes():
    ref = _outputs([0.1, 0.2])
    bad = _outputs([0.1, float("nan")])
    assert not compare("engine", "fp16", ref, bad, 0.5, 0.3).passed


def test_tolerances_tighten_with_precision():
    fp32, fp16, int8 = (TOLERANCES[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.score == 1e-3 and fp32.flip_fraction == 0
    assert fp32.score < fp16.score < int8.score
