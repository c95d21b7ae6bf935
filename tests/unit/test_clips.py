"""Event clips: the ring's before/after frames, its bounds, and the lossless clip file."""
import cv2
import numpy as np

from edge_ad.publish.clips import MAX_PENDING, ClipRings, write_clip


def _frame(i, w=300, h=200):
    return np.full((h, w, 3), i, np.uint8)


def test_a_clip_holds_the_n_frames_before_the_event_the_event_and_the_n_after():
    rings, got = ClipRings(["cam0"], frames=2, width=100), []
    for i in range(5):
        rings.append("cam0", float(i), _frame(i))
    assert rings.request("cam0", 3.0, got.append)  # frame 3 is the NG
    assert got == []  # waits for two frames after it (frame 4 is one)
    rings.append("cam0", 5.0, _frame(5))
    assert len(got) == 1
    clip = got[0]
    assert [t for t, _ in clip] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [int(img[0, 0, 0]) for _, img in clip] == [1, 2, 3, 4, 5]
    assert clip[0][1].shape == (67, 100, 3)  # shrunk to the clip width, aspect kept
    assert rings.bound_bytes(200, 300) == 3 * 5 * 100 * 67 * 3


def test_overlapping_events_share_a_clip_and_pending_clips_are_bounded_and_flushed():
    rings, got = ClipRings(["cam0"], frames=3), []
    rings.append("cam0", 0.0, _frame(0, 64, 64))
    assert rings.request("cam0", 0.0, got.append)
    assert not rings.request("cam0", 0.5, got.append)  # inside the pending clip's after-frames
    for k in range(MAX_PENDING - 1):
        assert rings.request("cam0", 0.0, got.append)
    assert not rings.request("cam0", 0.0, got.append) and rings.refused == 1
    rings.flush()  # the camera stopped: each clip with what it has
    assert len(got) == MAX_PENDING and all(len(c) == 1 for c in got)
    assert got[0][0][1].shape == (64, 64, 3)  # small frames are kept as they are


def test_the_clip_file_is_lossless(tmp_path):
    rng = np.random.default_rng(0)
    frames = [(i / 10, rng.integers(0, 256, (48, 64, 3), np.uint8)) for i in range(5)]
    write_clip(tmp_path / "c.avi", frames)
    cap = cv2.VideoCapture(str(tmp_path / "c.avi"))
    read = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        read.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert len(read) == 5
    assert all(np.array_equal(a, b) for (_, a), b in zip(frames, read))
    assert round(cap.get(cv2.CAP_PROP_FPS)) == 10
