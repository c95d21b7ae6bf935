"""ROI, ignore masks and minimum defect area on the real engine, with a real defect."""
import cv2
import numpy as np

from edge_ad.bundle import load_bundle
from edge_ad.engines import create_engine
from edge_ad.decision.camera import CameraDecision
from edge_ad.imageio import read_image
from edge_ad.pipeline.inspector import Inspector


def _hole(demo_root):
    image = read_image(demo_root / "wood" / "test" / "hole" / "000.png")
    mask = cv2.imread(str(demo_root / "wood" / "ground_truth" / "hole" / "000_mask.png"), 0) > 0
    return image, mask


def test_ignore_mask_min_area_and_roi_change_the_verdict_for_stated_reasons(bundle_dir, demo_root):
    image, truth = _hole(demo_root)
    bundle = load_bundle(bundle_dir)
    size = bundle.manifest.input.height
    with create_engine(bundle) as engine:
        inspector = Inspector(engine, bundle.manifest)
        plain = inspector.inspect([image])[0]
        assert plain.verdict == "NG" and plain.regions

        # ignore the area around the hole (as a fixture or a label on the part would be); the
        # map's smoothing spreads a hole's response ~30 px, so the area reaches 40 px beyond it
        ignore = cv2.dilate(truth.astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
        ignore_model = cv2.resize(ignore.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
        masked = inspector.inspect([image], [CameraDecision(ignore_model=ignore_model)])[0]
        assert masked.verdict == "OK" and masked.score < plain.score

        # a minimum defect area larger than the hole
        biggest = max(r.area_px for r in plain.regions)
        small = inspector.inspect([image], [CameraDecision(min_defect_area_px=biggest + 1)])[0]
        assert small.verdict == "OK" and not small.regions

        # a camera that sees two parts side by side: the ROI decides which one is judged
        good = read_image(demo_root / "wood" / "test" / "good" / "000.png")
        wide = np.hstack([good, image])
        h, w = image.shape[:2]
        left = inspector.inspect([wide], [CameraDecision(roi_xywh=(0, 0, w, h))])[0]
        right = inspector.inspect([wide], [CameraDecision(roi_xywh=(w, 0, w, h))])[0]
        assert left.inspected_rgb.shape[:2] == (h, w)
        assert (left.verdict, right.verdict) == ("OK", "NG")
        assert right.score == plain.score  # the ROI crop is exactly the part on its own
