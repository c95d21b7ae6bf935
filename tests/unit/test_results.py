import pytest

from edge_ad.decision import NG, OK
from edge_ad.decision.result import Result, as_stale
from edge_ad.pipeline.results import Evicted, ResultStore


def _make(verdict=OK, camera="cam0", t=100.0):
    return lambda seq: Result(seq, camera, seq, t, t, verdict, 0.1, 1.0, 2.0, {"name": "m"})


def test_sequence_numbers_are_contiguous_and_polling_is_lossless():
    store = ResultStore(capacity=100)
    for _ in range(10):
        store.publish(_make())
    got, after = [], 0
    while True:
        batch = store.after(after, limit=3)
        if not batch:
            break
        got += [r.seq for r in batch]
        after = batch[-1].seq
    assert got == list(range(1, 11))
    assert store.last_seq == 10


def test_evicted_range_reports_oldest_available():
    store = ResultStore(capacity=10)
    for _ in range(25):
        store.publish(_make())
    with pytest.raises(Evicted) as exc:
        store.after(5)
    assert exc.value.oldest_seq == 16
    assert [r.seq for r in store.after(15)][:2] == [16, 17]


def test_latest_per_camera():
    store = ResultStore()
    store.publish(_make(camera="a"))
    store.publish(_make(camera="b"))
    assert store.latest("a").seq == 1
    assert store.latest().seq == 2
    assert store.latest("c") is None


def test_stale_ok_is_never_served_as_ok():
    store = ResultStore()
    ok = store.publish(_make(OK, t=100.0))
    body = as_stale(ok, "camera down", now=101.0)
    assert body["verdict"] == "FAULT" and body["stale"] is True
    assert body["reason"] == "stale: camera down" and body["age_ms"] == 1000.0
    ng = store.publish(_make(NG, t=100.0))
    assert as_stale(ng, "camera down", 101.0)["verdict"] == NG  # an old reject stays a reject


def test_result_json_age():
    r = _make(t=100.0)(7)
    body = r.to_json(now=100.25)
    assert body["age_ms"] == 250.0 and body["seq"] == 7
