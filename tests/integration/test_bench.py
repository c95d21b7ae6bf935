"""``edge-ad bench`` produces every figure it promises (the figures themselves go to
docs/benchmarks.md; no speed is asserted here)."""
import json

from edge_ad.cli import main

KEYS = {"raw_fps", "served_fps", "served_over_raw_fps", "engine_p50_ms", "engine_p99_ms",
        "e2e_p50_ms", "e2e_p99_ms", "e2e_p99_over_engine_p99", "peak_rss_mb"}


def test_bench_json(bundle_dir, demo_root, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(bundle_dir), "--source", f"dir://{demo_root}/wood/test/good",
               "--seconds", "0.4", "--rounds", "1", "--json", str(out)])
    assert rc == 0
    figures = json.loads(out.read_text())
    assert KEYS <= set(figures)
    assert all(figures[k] > 0 for k in KEYS)
    assert figures["served_fps"] <= 3 * figures["raw_fps"]
    assert "served_over_raw_fps" in capsys.readouterr().out
