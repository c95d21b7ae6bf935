"""Evaluation metrics against independent implementations: scikit-learn for the image metrics,
and for AUPRO its published definition, on cases with known answers and by brute force."""
import numpy as np
import pytest
from sklearn import metrics as skm

from edge_ad.evaluation.metrics import Confusion, aupro, auroc, average_precision, f1_max


@pytest.fixture(params=[0, 1, 2])
def scored(request):
    rng = np.random.default_rng(request.param)
    y = rng.random(300) < 0.3
    s = rng.normal(0, 1, 300) + 1.2 * y
    s[::7] = np.round(s[::7], 1)  # ties
    return y, s


def test_auroc_matches_sklearn(scored):
    y, s = scored
    assert auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_average_precision_matches_sklearn(scored):
    y, s = scored
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


def test_f1_max_matches_sklearn_pr_curve(scored):
    y, s = scored
    p, r, _ = skm.precision_recall_curve(y, s)
    best = np.max(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0))
    f1, thr = f1_max(y, s)
    assert f1 == pytest.approx(best, abs=1e-12)
    assert skm.f1_score(y, s >= thr) == pytest.approx(f1, abs=1e-12)


def test_confusion_matches_sklearn(scored):
    y, s = scored
    c = Confusion.at(y, s, 0.5)
    tn, fp, fn, tp = skm.confusion_matrix(y, s >= 0.5).ravel()
    assert (c.tp, c.fp, c.tn, c.fn) == (tp, fp, tn, fn)
    rates = c.rates()
    assert rates["precision"] == pytest.approx(skm.precision_score(y, s >= 0.5))
    assert rates["recall"] == pytest.approx(skm.recall_score(y, s >= 0.5))
    assert rates["fpr"] + rates["specificity"] == pytest.approx(1.0)


def _pro_brute_force(masks, maps, limit=0.3, steps=4001):
    """The definition, evaluated at many thresholds and integrated numerically."""
    import cv2

    regions = []
    for i, m in enumerate(masks):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [(i, lab == r) for r in range(1, n)]
    normal = ~masks
    xs, ys = [], []
    for t in np.linspace(maps.max() + 1e-9, maps.min() - 1e-9, steps):
        fpr = np.mean(maps[normal] >= t)
        pro = np.mean([np.mean(maps[i][r] >= t) for i, r in regions])
        xs.append(fpr)
        ys.append(pro)
    xs, ys = np.array(xs), np.array(ys)
    grid = np.linspace(0, limit, 2001)
    return np.trapezoid(np.interp(grid, xs, ys), grid) / limit


def test_aupro_perfect_map_is_one():
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:5, 2:5] = masks[1, 10:15, 10:12] = True
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0)


def test_aupro_one_region_found_one_never_is_half():
    # Region A scores 1 everywhere, region B scores 0 like every normal pixel but half of the
    # normal pixels, which score 0.5. Until FPR reaches 0.3, only A is found: PRO = 1/2.
    masks = np.zeros((1, 20, 20), bool)
    masks[0, 0:4, 0:4] = True  # A
    masks[0, 10:14, 10:14] = True  # B
    maps = np.zeros((1, 20, 20))
    maps[0, 0:4, 0:4] = 1.0
    normal_idx = np.flatnonzero(~masks[0].ravel())
    maps[0].ravel()[normal_idx[: len(normal_idx) // 2]] = 0.5
    assert aupro(masks, maps) == pytest.approx(0.5, abs=1e-9)


def test_aupro_region_size_does_not_weigh():
    # A large region found and a small one missed counts the same as the reverse: per region.
    masks = np.zeros((1, 30, 30), bool)
    masks[0, 0:10, 0:10] = True
    masks[0, 20:22, 20:22] = True
    # normal pixels at 0.5 and the missed region at 0: it is not found before FPR reaches 1
    found_big = np.where(masks, 0.0, 0.5)
    found_big[0, 0:10, 0:10] = 1.0
    found_small = np.where(masks, 0.0, 0.5)
    found_small[0, 20:22, 20:22] = 1.0
    assert aupro(masks, found_big) == pytest.approx(aupro(masks, found_small)) == pytest.approx(0.5)


def test_aupro_matches_brute_force_definition():
    rng = np.random.default_rng(4)
    masks = np.zeros((3, 24, 24), bool)
    masks[0, 3:9, 4:8] = masks[1, 12:20, 12:14] = masks[1, 2:4, 18:22] = True
    maps = rng.normal(0, 1, masks.shape) + 1.5 * masks + rng.normal(0, 0.3, masks.shape)
    assert aupro(masks, maps) == pytest.approx(_pro_brute_force(masks, maps), abs=2e-3)
