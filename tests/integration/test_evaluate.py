"""``edge-ad evaluate`` through the real engine on a held-out MVTec-layout test split."""
import json
import re

import numpy as np
import pytest

from edge_ad.cli import main
from edge_ad.commands.evaluate import evaluate


def _auroc_by_pairs(labels, scores) -> float:
    """AUROC by its definition, independent of edge_ad's: the chance that a defect scores above
    a good part, ties counting half."""
    bad, good = scores[labels][:, None], scores[~labels][None, :]
    return float(np.mean((bad > good) + 0.5 * (bad == good)))


def test_evaluate_json_and_report(bundle_dir, demo_root, tmp_path, capsys):
    out_json, out_report = tmp_path / "m.json", tmp_path / "report"
    rc = main(["evaluate", str(bundle_dir), "--data", str(demo_root / "wood"),
               "--json", str(out_json), "--report", str(out_report)])
    assert rc == 0
    m = json.loads(out_json.read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "average_precision", "threshold"):
        assert 0.0 <= m[key] <= 1.0 or key == "threshold", key
    assert set(m["per_defect"]) == {"foreign", "hole", "scratch", "stain"}
    c = m["confusion"]
    assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == m["count"] == 8 + 4 * 3
    assert m["image_auroc"] >= 0.9 and m["pixel_auroc"] >= 0.9
    page = (out_report / "report.html").read_text()
    assert "<svg" in page and page.count("data:image/jpeg;base64,") >= 8
    assert not re.search(r'(src|href)="https?://', page)  # opens offline
    assert "image AUROC" in capsys.readouterr().out


def test_evaluate_matches_the_engine_scores(bundle_dir, demo_root):
    result, detail = evaluate(str(bundle_dir), str(demo_root / "wood"))
    labels, scores = np.asarray(detail["labels"], bool), np.asarray(detail["scores"])
    assert labels.any() and not labels.all()
    assert result["image_auroc"] == pytest.approx(_auroc_by_pairs(labels, scores), abs=1e-12)
    called = detail["scores"] >= result["threshold"]
    assert result["confusion"]["fp"] == int(np.sum(called & ~detail["labels"]))
