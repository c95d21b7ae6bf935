import time

from edge_ad.pipeline.journal import Journal
from edge_ad.pipeline.results import Evicted, Result, ResultStore

import pytest


def _result(seq, t=None, part=None, verdict="OK"):
    t = time.time() if t is None else t
    return Result(seq, "cam0", seq, t, t, verdict, 0.1, 1.0, 2.0, {"name": "m"}, part_id=part)


def _fill(path, n, **kw):
    j = Journal(path, **kw)
    store = ResultStore(capacity=10, first_seq=j.last_seq() + 1, sink=j.append)
    j.start()
    for i in range(n):
        store.publish(lambda seq, i=i: _result(seq, part=f"P{i}" if i % 10 == 0 else None))
    j.close()
    return store


def test_numbering_and_history_survive_a_restart(tmp_path):
    db = tmp_path / "j.sqlite"
    first = _fill(db, 25)
    assert first.last_seq == 25
    j = Journal(db)
    assert j.last_seq() == 25
    store = ResultStore(capacity=10, first_seq=j.last_seq() + 1, sink=j.append)
    assert store.publish(lambda seq: _result(seq)).seq == 26  # continues, never reuses a seq
    with pytest.raises(Evicted):
        store.after(3)  # the fresh ring does not hold it ...
    rows = j.after(3, 5)  # ... the journal does
    assert [r["seq"] for r in rows] == [4, 5, 6, 7, 8]
    assert rows[0]["verdict"] == "OK" and rows[0]["age_ms"] >= 0
    assert j.by_part("P20")["seq"] == 21
    j.close()


def test_retention_by_count_and_age(tmp_path):
    db = tmp_path / "j.sqlite"
    _fill(db, 3000, max_rows=1000)
    j = Journal(db)
    assert j.oldest_seq() == 2001 and j.last_seq() == 3000
    j.close()
    old = Journal(tmp_path / "old.sqlite", max_age_s=60)
    old.start()
    old.append(_result(1, t=time.time() - 3600))
    old.append(_result(2))
    old.close()
    again = Journal(tmp_path / "old.sqlite")
    assert again.oldest_seq() == 2
    again.close()


def test_append_never_waits_for_the_disk(tmp_path):
    j = Journal(tmp_path / "j.sqlite", flush_s=0.5)
    j.start()
    t0 = time.perf_counter()
    for i in range(2000):
        j.append(_result(i + 1))
    assert time.perf_counter() - t0 < 0.5  # queued, not written inline
    j.close()
    assert Journal(tmp_path / "j.sqlite").last_seq() == 2000
