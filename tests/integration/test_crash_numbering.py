"""kill -9 under polling, 20 times: a seq, once served, always means the same result.

The child is the real numbering path (Journal.resume/reserve/append behind ResultStore, as
edge_ad.assembly wires it) publishing as fast as it can, and a poller reading the store the way
``GET /v1/results?after=`` does, printing every result it was served. The parent kills it at a
random moment, restarts it on the same journal, and checks every served seq against the journal
afterwards. Before the reservation this failed within a few cycles: rows were written in batches
and numbering resumed from the highest row, so served seqs came back as other results.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edge_ad.pipeline.journal import Journal

CHILD = textwrap.dedent("""
    import sys, threading, time
    from edge_ad.pipeline.journal import Journal
    from edge_ad.decision.result import Result
    from edge_ad.pipeline.results import ResultStore, new_boot_id

    journal = Journal(sys.argv[1])
    boot = new_boot_id()
    store = ResultStore(1_000_000, journal.resume(boot), sink=journal.append, reserve=journal.reserve, boot_id=boot)
    journal.start()

    def poll():
        last = store.last_seq
        while True:
            for r in store.after(last, 1000):
                sys.stdout.write(f"{r.seq} {r.boot_id} {r.frame_index}\\n")
                last = r.seq
            sys.stdout.flush()
            time.sleep(0.002)

    threading.Thread(target=poll, daemon=True).start()
    print("ready", flush=True)
    i = 0
    while True:
        t = time.time()
        store.publish(lambda seq: Result(seq, "cam0", i, t, t, "OK", 0.1, 1.0, 2.0, {"name": "m"}, boot_id=boot))
        i += 1
""")


def test_no_served_seq_is_ever_another_result_after_kill_9(tmp_path):
    db = tmp_path / "journal.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = random.Random(0)
    served: dict[int, tuple[str, int]] = {}
    boots = []
    for cycle in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        lines = [line.split() for line in out.splitlines() if line.count(" ") == 2]
        assert lines, f"cycle {cycle}: nothing was served"
        for seq, boot, frame in lines:
            previous = served.setdefault(int(seq), (boot, int(frame)))
            assert previous == (boot, int(frame)), f"seq {seq} served as {previous} and as {(boot, frame)}"
        boots.append(lines[0][1])
    assert len(set(boots)) == 20  # a new boot id each start
    journal = Journal(db)
    rows = {r["seq"]: (r["boot_id"], r["frame_index"]) for r in journal.after(0, 10_000_000)}
    gaps = journal.gaps(0, 10**12)
    journal.close()
    missing = [s for s in served if s not in rows]
    assert not missing, f"served but not in the journal: {missing[:5]}"
    assert all(rows[s] == served[s] for s in served)
    # every number a restart skipped is recorded, and none of them was ever served
    assert len(gaps) >= 19 and not any(a <= s <= b for a, b in gaps for s in served)
