import sqlite3
import time

from edge_ad.pipeline.journal import RESERVE_BLOCK, Journal
from edge_ad.decision.result import Result
from edge_ad.pipeline.results import Evicted, ResultStore

import pytest


def _result(seq, t=None, part=None, verdict="OK"):
    t = time.time() if t is None else t
    return Result(seq, "cam0", seq, t, t, verdict, 0.1, 1.0, 2.0, {"name": "m"}, part_id=part)


def _store(j, boot="boot-a"):
    return ResultStore(capacity=10, first_seq=j.resume(boot), sink=j.append, reserve=j.reserve, boot_id=boot)


def _fill(path, n, **kw):
    j = Journal(path, **kw)
    store = _store(j)
    j.start()
    for i in range(n):
        store.publish(lambda seq, i=i: _result(seq, part=f"P{i}" if i % 10 == 0 else None))
    j.close()
    return store


def test_numbering_skips_past_the_reservation_and_history_survives_a_restart(tmp_path):
    db = tmp_path / "j.sqlite"
    first = _fill(db, 25)
    assert first.last_seq == 25
    j = Journal(db)
    assert j.last_seq() == 25 and j.reserved() == RESERVE_BLOCK
    store = _store(j, "boot-b")
    # a restart never reuses a number the last boot may have handed out: it skips the reservation
    assert store.publish(lambda seq: _result(seq)).seq == RESERVE_BLOCK + 1
    assert j.gaps(0, 10_000) == [[26, RESERVE_BLOCK]] and j.gaps(30, 40) == [[31, 40]]
    assert j.gaps(RESERVE_BLOCK, 10_000) == []
    with pytest.raises(Evicted):
        store.after(3)  # the fresh ring does not hold it ...
    rows = j.after(3, 5)  # ... the journal does, with the boot that numbered it
    assert [r["seq"] for r in rows] == [4, 5, 6, 7, 8] and rows[0]["boot_id"] == "boot-a"
    assert rows[0]["verdict"] == "OK" and rows[0]["age_ms"] >= 0
    assert j.by_part("P20")["seq"] == 21
    assert store.latest().boot_id == "boot-b"
    j.close()


def test_numbering_survives_retention_deleting_every_row(tmp_path):
    db = tmp_path / "j.sqlite"
    j = Journal(db, max_age_s=60)
    store = _store(j)
    for _ in range(5):
        store.publish(lambda seq: _result(seq, t=time.time() - 3600))
    j.start()
    j.close()  # the final retention pass deletes all five (an hour old)
    again = Journal(db)
    assert again.last_seq() == 0 and again.resume("boot-b") == RESERVE_BLOCK + 1
    again.close()


def test_a_result_is_committed_before_anyone_can_see_it(tmp_path):
    db = tmp_path / "j.sqlite"
    j = Journal(db)
    store = _store(j)
    other = sqlite3.connect(db)  # another process's view of the file
    for _ in range(3):
        seen = store.publish(lambda seq: _result(seq))
        assert other.execute("SELECT seq FROM results WHERE seq = ?", (seen.seq,)).fetchone() == (seen.seq,)
    other.close()
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


def test_a_failed_write_is_counted_and_inspection_goes_on(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    store = _store(j)
    store.publish(lambda seq: _result(seq))
    j._write.execute("DROP TABLE results")  # stands in for a full or broken disk
    served = store.publish(lambda seq: _result(seq))
    assert served.seq == 2 and store.latest().seq == 2
    assert j.failed_writes == 1 and "result 2 not journaled" in j.last_error
    j.close()


def test_a_clean_stop_gives_the_reservation_back(tmp_path):
    db = tmp_path / "j.sqlite"
    j = Journal(db)
    store = _store(j)
    for _ in range(7):
        store.publish(lambda seq: _result(seq))
    j.release(store.last_seq)
    j.close()
    again = Journal(db)
    assert again.resume("boot-b") == 8 and again.gaps(0, 10**9) == []
    again.close()
