"""Event clips on the real pipeline: the line video through ONNX Runtime, evidence with
``clip_frames``; every NG's clip holds the captured frames around it, losslessly."""
import json
import time

import cv2
import numpy as np

from edge_ad.assembly import build_service
from edge_ad.config import build_config
from edge_ad.publish.clips import ClipRings


def _frames(path):
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return out, cap.get(cv2.CAP_PROP_FPS)
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_each_ng_gets_a_lossless_clip_of_the_frames_captured_around_it(bundle_dir, demo_root, tmp_path):
    n, width = 3, 128
    evidence = tmp_path / "ev"
    config = build_config({"model": str(bundle_dir),
                           "cameras": [{"source": f"file://{demo_root}/video/wood_line.avi"}],
                           "evidence": {"path": str(evidence), "ok_every": 0, "clip_frames": n,
                                        "clip_width": width}})
    service = build_service(config)
    service.start()
    try:
        t0 = time.monotonic()
        while not service.pipeline.finished and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert service.pipeline.finished
    finally:
        service.stop()  # evidence flushes: clips still waiting are written with what they have
    video, _ = _frames(demo_root / "video" / "wood_line.avi")  # every captured frame, in order
    shrink = ClipRings(["x"], n, width).shrink
    ngs = sorted(evidence.glob("*_NG.json"))
    clips = sorted(evidence.glob("*_NG_clip.avi"))
    assert ngs and clips, sorted(p.name for p in evidence.iterdir())
    for clip in clips:
        result = json.loads(clip.with_name(clip.name.replace("_clip.avi", ".json")).read_text())
        frames, fps = _frames(clip)
        index = result["frame_index"]
        want = [shrink(video[i]) for i in range(max(0, index - n), min(len(video), index + n + 1))]
        assert len(frames) == len(want) and frames[0].shape == (128, 128, 3)
        # lossless, and exactly the captured frames around the NG (captured, not only inspected)
        assert all(np.array_equal(a, b) for a, b in zip(frames, want)), clip.name
        assert 6 <= fps <= 30  # the video plays at 12 fps
    # overlapping NGs share a clip: every NG is inside some clip's span
    spans = [json.loads(c.with_name(c.name.replace("_clip.avi", ".json")).read_text())["frame_index"] for c in clips]
    for sidecar in ngs:
        index = json.loads(sidecar.read_text())["frame_index"]
        assert any(s <= index <= s + n for s in spans), index
