"""The decision stage by value: raw outputs in, a Result out, nothing else touched."""
import json

import numpy as np
import pytest

from edge_ad.bundle import Normalization, Thresholds
from edge_ad.decision import FAULT, INVALID, NG, OK, Verdict
from edge_ad.decision.camera import CameraDecision
from edge_ad.decision.judge import Context, Unjudged, judge, missed_trigger
from edge_ad.decision.scoring import Inspection, score_frame
from edge_ad.sources.base import Frame

TH = Thresholds(image=Normalization(threshold=2.0, scale=1.0), pixel=Normalization(threshold=2.0, scale=1.0))
CONTEXT = Context({"name": "m", "version": "3", "family": "patchcore"}, boot_id="b00t", part_id="P-1")


def _frame(h=64, w=64):
    return Frame("cam0", 7, np.zeros((h, w, 3), np.uint8), captured_at=1000.0, captured_mono=5.0)


def _map(peak_at=None, peak=4.0, size=32):
    m = np.full((size, size), 1.0, np.float32)
    if peak_at is not None:
        y, x = peak_at
        m[y:y + 4, x:x + 4] = peak
    return m


def test_a_defect_scores_ng_with_its_region_in_frame_pixels():
    s = score_frame(_map((8, 8)), 4.0, TH, frame_hw=(64, 64))
    assert s.verdict == NG and s.score == pytest.approx(1.0) and s.raw_score == 4.0
    assert len(s.regions) == 1 and s.regions[0].bbox_xywh == (16, 16, 8, 8)  # map 32 -> frame 64


def test_a_clean_frame_is_ok_and_the_threshold_sits_at_one_half():
    s = score_frame(_map(), 1.5, TH, frame_hw=(64, 64))
    assert s.verdict == OK and s.score == pytest.approx(0.25) and s.regions == ()
    assert score_frame(_map(), 2.0, TH, frame_hw=(64, 64)).verdict == NG  # at the threshold: NG


def test_the_ignore_mask_removes_a_defect_from_map_and_score():
    ignore = np.zeros((32, 32), bool)
    ignore[8:12, 8:12] = True
    s = score_frame(_map((8, 8)), 4.0, TH, (64, 64), CameraDecision(ignore_model=ignore))
    assert s.verdict == OK and s.raw_score == pytest.approx(1.0) and s.regions == ()


def test_a_defect_smaller_than_the_minimum_area_is_ok():
    assert score_frame(_map((8, 8)), 4.0, TH, (64, 64), min_area_px=65).verdict == OK  # region is 64 px
    assert score_frame(_map((8, 8)), 4.0, TH, (64, 64), min_area_px=64).verdict == NG


def test_judge_records_the_inspection_and_the_context():
    s = score_frame(_map((8, 8)), 4.0, TH, (64, 64))
    ins = Inspection(s.verdict, s.score, s.raw_score, 2.0, s.regions, s.raw_map, TH.pixel, 0.001, 0.010, 0.002)
    r = judge(_frame(), ins, CONTEXT, e2e_s=0.0234, now=1000.05)
    assert (r.seq, r.camera, r.frame_index, r.captured_at, r.published_at) == (0, "cam0", 7, 1000.0, 1000.05)
    assert r.verdict == NG and r.score == 1.0 and r.threshold == 2.0 and r.regions == s.regions
    assert (r.part_id, r.boot_id, r.model["version"]) == ("P-1", "b00t", "3")
    assert r.latency_ms == {"preprocess": 1.0, "infer": 10.0, "postprocess": 2.0, "end_to_end": 23.4}
    assert json.loads(json.dumps(r.to_json(now=1000.1)))["verdict"] == "NG"  # the enum is plain text


@pytest.mark.parametrize("verdict", [INVALID, FAULT])
def test_a_frame_without_an_inspection_has_no_score(verdict):
    r = judge(_frame(), Unjudged(verdict, "too dark"), CONTEXT, e2e_s=0.001, now=1000.0)
    assert r.verdict == verdict and r.score is None and r.raw_score is None and r.threshold is None
    assert r.reason == "too dark" and r.latency_ms == {"end_to_end": 1.0}


def test_an_unjudged_frame_can_never_be_ok():
    with pytest.raises(ValueError, match="INVALID or FAULT"):
        judge(_frame(), Unjudged(OK, "no"), CONTEXT, e2e_s=0.0, now=0.0)


def test_a_missed_trigger_is_a_fault_for_its_part():
    r = missed_trigger("cam0", received_at=999.5, context=CONTEXT, now=1000.0)
    assert r.verdict == FAULT and r.part_id == "P-1" and r.frame_index == -1 and "500 ms" in r.reason


def test_verdicts_read_as_their_words():
    assert f"{NG}" == str(NG) == "NG" and Verdict("OK") is OK and {OK: 1}["OK"] == 1


def test_regions_found_on_the_raw_map_are_those_of_the_normalized_one():
    rng = np.random.default_rng(0)
    raw = rng.normal(1.5, 0.6, (32, 32)).astype(np.float32)
    raw[20:26, 3:9] += 2.0
    norm = score_frame(raw, float(raw.max()), TH, (64, 48))
    ins = Inspection(norm.verdict, norm.score, norm.raw_score, 2.0, norm.regions, norm.raw_map, TH.pixel, 0, 0, 0)
    from edge_ad.decision import find_regions

    assert norm.regions == tuple(find_regions(ins.map_norm, (64, 48)))  # same areas, same peaks
    assert ins.map_norm.max() <= 1.0 and abs(float(ins.map_norm[raw == raw.max()][0]) - norm.score) < 1e-6


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_score_is_a_fault_never_an_ok(raw):
    # NaN >= threshold is False: unguarded, an overflowing fp16 engine would read as OK
    s = score_frame(_map(), raw, TH, (64, 64))
    assert s.verdict == FAULT and s.regions == ()
    ins = Inspection(s.verdict, s.score, s.raw_score, 2.0, s.regions, s.raw_map, TH.pixel, 0, 0, 0)
    assert "non-finite" in ins.fault
    r = judge(_frame(), ins, CONTEXT, e2e_s=0.001, now=1000.0)
    assert r.verdict == FAULT and r.code == "ENGINE" and "fp32" in r.reason
    assert r.score is None and r.raw_score is None and r.threshold is None
    json.loads(json.dumps(r.to_json(now=1000.1), allow_nan=False))  # strict JSON: no NaN anywhere


def test_a_nan_in_the_map_is_a_fault_even_when_the_score_is_finite():
    # ONNX Runtime's ReduceMax skips NaN: the score can be finite over a map with NaN patches
    m = _map()
    m[0, 0] = np.nan
    assert score_frame(m, 1.5, TH, (64, 64)).verdict == FAULT
    ignore = np.zeros((32, 32), bool)
    ignore[8:12, 8:12] = True  # with a mask, the score is taken again from the map
    s = score_frame(m, 1.5, TH, (64, 64), CameraDecision(ignore_model=ignore))
    assert s.verdict == FAULT and np.isnan(s.raw_score)
