"""``report.html``: one self-contained file (inline SVG charts, embedded JPEG overlays) that a line
engineer can open offline and read: is this model good enough, and where does it fail?"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from ..decision import find_regions, normalize, verdict_for
from ..imageio import read_image
from ..overlay import encode_jpeg, render_overlay
from .metrics import precision_recall, roc_curve

W, H, PAD = 360, 260, 40


def _poly(xs, ys, colour: str) -> str:
    pts = " ".join(f"{PAD + x * (W - 2 * PAD):.1f},{H - PAD - y * (H - 2 * PAD):.1f}" for x, y in zip(xs, ys))
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>'


def _axes(xlabel: str, ylabel: str, title: str) -> str:
    x0, y0, x1, y1 = PAD, H - PAD, W - PAD, PAD
    ticks = "".join(
        f'<text x="{PAD + t * (W - 2 * PAD):.0f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{t:g}</text>'
        f'<text x="{PAD - 6}" y="{H - PAD - t * (H - 2 * PAD) + 3:.0f}" font-size="10" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1))
    return (f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fafafa" stroke="#999"/>'
            f'{ticks}<text x="{W / 2}" y="{H - 6}" font-size="12" text-anchor="middle">{xlabel}</text>'
            f'<text x="12" y="{H / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 12 {H / 2})">{ylabel}</text>'
            f'<text x="{W / 2}" y="18" font-size="13" font-weight="600" text-anchor="middle">{title}</text>')


def _svg(body: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">{body}</svg>'


def roc_svg(labels, scores, value: float) -> str:
    fpr, tpr, _ = roc_curve(labels, scores)
    return _svg(_axes("false-positive rate", "true-positive rate", f"ROC (AUROC {value:.4f})")
                + _poly([0, 1], [0, 1], "#bbb") + _poly(fpr, tpr, "#1f6feb"))


def pr_svg(labels, scores, value: float) -> str:
    precision, recall, _ = precision_recall(labels, scores)
    return _svg(_axes("recall", "precision", f"precision–recall (AP {value:.4f})")
                + _poly(np.r_[0, recall], np.r_[precision[0], precision], "#8250df"))


def histogram_svg(labels, scores, threshold: float) -> str:
    # Defects can score 100x the threshold; a log axis keeps the good parts' spread visible.
    log = bool(scores.min() > 0 and threshold > 0 and scores.max() / scores.min() > 10)
    if log:
        scores, threshold = np.log10(scores), float(np.log10(threshold))
    lo, hi = float(min(scores.min(), threshold)), float(max(scores.max(), threshold))
    edges = np.linspace(lo, hi + 1e-12, 31)
    good, _ = np.histogram(scores[~labels], edges)
    bad, _ = np.histogram(scores[labels], edges)
    top = max(good.max(), bad.max(), 1)
    bw = (W - 2 * PAD) / 30
    bars = ""
    for counts, colour in ((good, "#2da44e"), (bad, "#cf222e")):
        for i, c in enumerate(counts):
            h = c / top * (H - 2 * PAD)
            bars += (f'<rect x="{PAD + i * bw:.1f}" y="{H - PAD - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                     f'fill="{colour}" fill-opacity="0.55"/>')
    tx = PAD + (threshold - lo) / (hi - lo + 1e-12) * (W - 2 * PAD)
    line = (f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{PAD}" y2="{H - PAD}" stroke="#000" stroke-dasharray="4 3"/>'
            f'<text x="{tx + 4:.1f}" y="{PAD + 12}" font-size="11">threshold</text>')
    frame = (f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>'
             f'<text x="{W / 2}" y="18" font-size="13" font-weight="600" text-anchor="middle">raw image scores: '
             f'<tspan fill="#2da44e">good</tspan> vs <tspan fill="#cf222e">defect</tspan></text>'
             f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">{10 ** lo if log else lo:.3g}</text>'
             f'<text x="{W / 2}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">'
             f'{"log scale" if log else ""}</text>'
             f'<text x="{W - PAD}" y="{H - PAD + 14}" font-size="10" text-anchor="end">{10 ** hi if log else hi:.3g}</text>')
    return _svg(frame + bars + line)


def _thumb(sample, raw_map, raw_score, manifest) -> str:
    th = manifest.thresholds
    frame = read_image(sample.path)
    map_norm = normalize(raw_map, th.pixel.threshold, th.pixel.scale)
    score = float(normalize(raw_score, th.image.threshold, th.image.scale))
    overlay = render_overlay(frame, map_norm, verdict_for(score), score,
                             find_regions(map_norm, frame.shape[:2]))
    data = base64.b64encode(encode_jpeg(overlay, 80)).decode()
    name = html.escape(f"{sample.defect}/{sample.path.name}")
    return (f'<figure><img src="data:image/jpeg;base64,{data}" alt="{name}">'
            f'<figcaption>{name} · score {score:.2f}</figcaption></figure>')


def _gallery(indices, detail) -> str:
    m = detail["bundle"].manifest
    return "".join(_thumb(detail["samples"][i], detail["maps"][i], detail["scores"][i], m)
                   for i in indices) or "<p>none</p>"


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def write_report(out_dir: Path, result: dict, detail: dict, worst: int = 8) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    labels, scores, thr = detail["labels"], detail["scores"], result["threshold"]
    m = detail["bundle"].manifest
    good_idx = np.flatnonzero(~labels)
    bad_idx = np.flatnonzero(labels)
    worst_good = good_idx[np.argsort(-scores[good_idx])][:worst]  # highest-scoring good parts
    worst_bad = bad_idx[np.argsort(scores[bad_idx])][:worst]  # lowest-scoring defects
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{r['count'] - r['defects']}/{r['defects']}</td>"
        f"<td>{_fmt(r['image_auroc'])}</td><td>{_fmt(r.get('pixel_auroc'))}</td><td>{_fmt(r.get('aupro'))}</td>"
        f"<td>{_fmt(r['f1_max'])}</td><td>{_fmt(r['average_precision'])}</td>"
        f"<td>{r['confusion']['fp']}</td><td>{r['confusion']['fn']}</td></tr>"
        for name, r in [("all", result), *result["per_defect"].items()])
    c = result["confusion"]
    n_good, n_bad = c["fp"] + c["tn"], c["tp"] + c["fn"]
    headline = (f"At the bundle's threshold: {c['fp']} false reject{'s' * (c['fp'] != 1)} of {n_good} "
                f"good parts ({100 * c['fp'] / max(n_good, 1):.1f} %), {c['fn']} "
                f"miss{'es' * (c['fn'] != 1)} of {n_bad} defects ({100 * c['fn'] / max(n_bad, 1):.1f} %).")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>edge-ad evaluation · {html.escape(m.name)}</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328;max-width:1200px}}
table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border:1px solid #d0d7de;padding:4px 10px;text-align:right}}
th{{background:#f6f8fa}}td:first-child,th:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:16px}}
.gallery{{display:flex;flex-wrap:wrap;gap:10px}}figure{{margin:0;width:200px}}figure img{{width:200px;height:auto;display:block}}
figcaption{{font-size:12px;color:#57606a}}.note{{color:#57606a}}</style></head><body>
<h1>Evaluation: {html.escape(m.name)} v{html.escape(m.version)} ({html.escape(m.family)})</h1>
<p class="note">data {html.escape(str(result['data']))} · {len(labels)} images ({len(good_idx)} good, {len(bad_idx)} defect)
· threshold {thr:.5g} ({html.escape(m.calibration.method)}, target false-reject rate {_fmt(m.calibration.target_fpr)})</p>
<p><b>{headline}</b></p>
<table><tr><th>subset</th><th>good/defect</th><th>image AUROC</th><th>pixel AUROC</th><th>AUPRO (30 % FPR)</th>
<th>F1-max</th><th>AP</th><th>false rejects</th><th>misses</th></tr>{rows}</table>
<div class="charts">{roc_svg(labels, scores, result['image_auroc'])}{pr_svg(labels, scores, result['average_precision'])}
{histogram_svg(labels, scores, thr)}</div>
<h2>Highest-scoring good parts (false rejects first)</h2><div class="gallery">{_gallery(worst_good, detail)}</div>
<h2>Lowest-scoring defects (misses first)</h2><div class="gallery">{_gallery(worst_bad, detail)}</div>
</body></html>"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path
