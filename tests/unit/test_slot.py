import threading

import numpy as np

from edge_ad.pipeline.slot import LatestFrameSlot
from edge_ad.sources.base import Frame


def _frame(i):
    return Frame("cam0", i, np.zeros((2, 2, 3), np.uint8), 0.0, 0.0)


def test_latest_frame_wins_and_drops_are_counted():
    slot = LatestFrameSlot("cam0", threading.Condition())
    assert slot.put(_frame(0)) is False
    assert slot.put(_frame(1)) is True  # frame 0 dropped, never inspected
    assert slot.take().index == 1
    assert slot.take() is None
    slot.put(_frame(2))
    assert slot.depth == 1
    assert slot.put_count == slot.taken_count + slot.dropped_count + slot.depth
