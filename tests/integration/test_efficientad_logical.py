"""EfficientAD's autoencoder branch sees logical anomalies: a part whose every patch looks
normal but whose layout is wrong (a component missing, or two swapped)."""
import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from export.models.base import TrainSettings, create

SIZE = 128


def _part(rng: np.random.Generator, layout: str) -> np.ndarray:
    """A grey board with a red disc top-left and a blue square bottom-right (each placed within
    ±3 px). ``missing``: no square; ``swapped``: the two exchange places."""
    noise = cv2.GaussianBlur(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), (0, 0), 3)
    img = np.clip(120 + 25 * noise, 0, 255)[:, :, None].repeat(3, 2).astype(np.uint8)
    a, b = (32, 32), (92, 92)
    if layout == "swapped":
        a, b = b, a
    ja, jb = rng.integers(-3, 4, 2), rng.integers(-3, 4, 2)
    cv2.circle(img, (int(a[0] + ja[0]), int(a[1] + ja[1])), 14, (220, 40, 40), -1)
    if layout != "missing":
        cx, cy = int(b[0] + jb[0]), int(b[1] + jb[1])
        cv2.rectangle(img, (cx - 13, cy - 13), (cx + 13, cy + 13), (40, 60, 220), -1)
    return img


def _batch(seed: int, layout: str, n: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([_part(rng, layout) for _ in range(n)])).permute(0, 3, 1, 2).float()


@pytest.mark.slow
def test_the_autoencoder_map_finds_a_missing_or_swapped_component():
    torch.manual_seed(0)
    model = create("efficientad", size=SIZE)
    model.fit(_batch(0, "normal", 32), TrainSettings(size=SIZE, steps=100, seed=0))
    model.eval()
    model.set_map_normalization(model.raw_maps(_batch(1, "normal", 12)))
    good = model.raw_maps(_batch(2, "normal", 12)).amax(dim=(2, 3))  # (N, 2): st, ae maps
    for layout in ("missing", "swapped"):
        bad = model.raw_maps(_batch(3, layout, 12)).amax(dim=(2, 3))
        labels = [0] * len(good) + [1] * len(bad)
        ae_auroc = roc_auc_score(labels, torch.cat([good[:, 1], bad[:, 1]]).numpy())
        assert ae_auroc >= 0.9, f"{layout}: autoencoder map AUROC {ae_auroc:.3f}"
        with torch.no_grad():
            scores = torch.cat([model(_batch(2, "normal", 12))[1], model(_batch(3, layout, 12))[1]])
        assert roc_auc_score(labels, scores.numpy()) >= 0.9, f"{layout}: the exported score misses it"
