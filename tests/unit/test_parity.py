"""The parity gate's comparison and tolerances on constructed outputs."""
import numpy as np

from edge_ad.parity import TOLERANCES, compare


def _outputs(scores):
    scores = np.asarray(scores, np.float32)
    return np.ones((len(scores), 4, 4), np.float32) * scores[:, None, None], scores


def test_identical_outputs_pass_at_fp32():
    ref = _outputs([0.2, 0.4, 0.9, 1.2])
    r = compare("torch", "fp32", ref, ref, threshold=0.5, labels=np.array([0, 0, 1, 1]))
    assert r.passed and r.verdict_flips == 0 and r.max_rel_score_diff == 0 and r.auroc_reference == 1.0


def test_fp32_refuses_a_single_flip_and_tiny_score_drift():
    ref = _outputs([0.2, 0.4999, 0.9])
    moved = _outputs([0.2, 0.5001, 0.9])  # 4e-4 relative and across the threshold
    r = compare("engine", "fp32", ref, moved, threshold=0.5)
    assert not r.passed and r.verdict_flips == 1
    assert any("verdicts flip" in why for why in r.reasons) and any("relative" in why for why in r.reasons)


def test_fp16_tolerates_small_drift_but_not_lost_ranking():
    ref = _outputs([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    close = _outputs([0.101, 0.199, 0.302, 0.79, 0.91, 1.0])
    assert compare("engine", "fp16", ref, close, 0.5, labels).passed
    swapped = _outputs([0.1, 0.2, 0.85, 0.3, 0.9, 1.0])  # a defect now scores below a good part
    r = compare("engine", "fp16", ref, swapped, 0.5, labels)
    assert not r.passed and r.auroc_candidate < 1.0


def test_tolerances_tighten_with_precision():
    fp32, fp16, int8 = (TOLERANCES[p] for p in ("fp32", "fp16", "int8"))
    assert fp32.rel_score == 1e-4 and fp32.flip_fraction == 0
    assert fp32.rel_score < fp16.rel_score < int8.rel_score
