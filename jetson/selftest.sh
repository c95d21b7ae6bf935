#!/usr/bin/env bash
# On the Jetson that will run it: does this bundle build, agree with ONNX Runtime and run fast
# enough here? Run inside the edge-ad container (or wherever edge-ad is installed):
#
#   jetson/selftest.sh BUNDLE --data DIR [--config FILE] [--seconds N] [--out DIR] [--tests PATH]
#
#   BUNDLE        the model bundle (manifest.json + model.onnx)
#   --data DIR    real images of parts (a folder, or an MVTec category): parity and latency run on them
#   --config FILE the service config: its cameras are opened and read once (edge-ad check)
#   --seconds N   length of each latency phase (default 2)
#   --out DIR     where reports go (default ./selftest-<date>)
#   --tests PATH  edge-ad's runtime tier of tests (default /opt/edge-ad/selftest/tests, in the image)
#
# Steps: device (L4T, JetPack, TensorRT, GPU) → edge-ad's runtime tests (pytest) → cameras →
# TensorRT engines fp16 and int8 (edge-ad build-engine) → parity of each against ONNX Runtime CPU
# (edge-ad verify) → latency percentiles of each engine and of ONNX Runtime (edge-ad bench).
# PASS/FAIL per step; exit 1 on any FAIL.
set -uo pipefail

die() { printf 'selftest: error: %s\n' "$*" >&2; exit 2; }
BUNDLE=""
DATA=""
CONFIG=""
SECONDS_PER_PHASE=2
OUT="selftest-$(date +%Y%m%d-%H%M%S)"
TESTS=/opt/edge-ad/selftest/tests
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA="${2:?--data needs a folder}"; shift 2 ;;
        --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
        --seconds) SECONDS_PER_PHASE="${2:?--seconds needs a number}"; shift 2 ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --tests) TESTS="${2:?--tests needs a folder or file of tests}"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) BUNDLE="$1"; shift ;;
    esac
done
[ -n "$BUNDLE" ] || die "name the bundle: jetson/selftest.sh BUNDLE --data DIR"
[ -f "$BUNDLE/manifest.json" ] || die "$BUNDLE is not a bundle (no manifest.json)"
[ -n "$DATA" ] && [ -d "$DATA" ] || die "--data must name a folder of part images"
command -v edge-ad >/dev/null || die "edge-ad is not on the PATH (run inside the container)"
mkdir -p "$OUT"
FAILED=0
report() {  # report PASS|FAIL|SKIP STEP DETAIL
    printf '%-4s  %-22s %s\n' "$1" "$2" "$3" | tee -a "$OUT/summary.txt"
    [ "$1" != FAIL ] || FAILED=1
}
# step NAME COMMAND...: run, keep the log, PASS on exit 0
step() {
    local name="$1"
    shift
    if "$@" >"$OUT/$name.log" 2>&1; then
        report PASS "$name" "$(tail -n 1 "$OUT/$name.log")"
    else
        report FAIL "$name" "$(tail -n 1 "$OUT/$name.log") (log: $OUT/$name.log)"
    fi
}

python3 - >"$OUT/device.log" 2>&1 <<'PY'
from edge_ad.platform import detect
p = detect()
where = f"Jetson L4T {p.l4t} (JetPack {p.jetpack or '?'})" if p.jetson else "not a Jetson"
print(f"{where}, GPU {p.gpu or 'none'} (sm {p.compute_capability or '?'}), TensorRT {p.tensorrt or 'not installed'}")
PY
if grep -q "^Jetson" "$OUT/device.log"; then
    report PASS device "$(cat "$OUT/device.log")"
else
    report FAIL device "$(tail -n 1 "$OUT/device.log")"
fi

# edge-ad's own tests, the runtime tier (tests/tiers.py): this installation's Python packages,
# OpenCV, GStreamer and HTTP stack behave as in development. The test of this script expects to
# run off a Jetson, so it stays out; pytest writes nothing outside /tmp (read-only root).
if [ -e "$TESTS" ]; then
    step tests python3 -m pytest "$TESTS" --runtime-tier -q -p no:cacheprovider \
        --ignore="$TESTS/integration/test_jetson_selftest.py"
else
    report FAIL tests "no tests at $TESTS (the edge-ad:jetson image carries them; or give --tests)"
fi

if [ -n "$CONFIG" ]; then
    step cameras edge-ad check --config "$CONFIG"
else
    report SKIP cameras "no --config given"
fi

SOURCE="dir://$(cd "$DATA" && pwd)"
latency() {  # latency NAME BENCH-ARGS...: run edge-ad bench, print its percentiles
    local name="$1"
    shift
    step "$name" edge-ad bench "$BUNDLE" --source "$SOURCE" --seconds "$SECONDS_PER_PHASE" \
        --json "$OUT/$name.json" "$@"
    [ -f "$OUT/$name.json" ] || return 0
    python3 - "$OUT/$name.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
b = json.load(open(sys.argv[1]))
print(f"      {b['provider']}: engine p50 {b['engine_p50_ms']:.1f} ms, p99 {b['engine_p99_ms']:.1f} ms; "
      f"end to end p50 {b['e2e_p50_ms']:.1f} ms, p99 {b['e2e_p99_ms']:.1f} ms; "
      f"{b['served_fps']:.1f} frames/s served; peak RSS {b['peak_rss_mb']:.0f} MB")
PY
}

for precision in fp16 int8; do
    step "engine-$precision" edge-ad build-engine "$BUNDLE" --precision "$precision"
    if grep -q "^PASS  engine-$precision" "$OUT/summary.txt"; then
        step "parity-$precision" edge-ad verify "$BUNDLE" --data "$DATA" --precision "$precision" \
            --json "$OUT/parity-$precision.json"
        latency "latency-trt-$precision" --backend tensorrt --precision "$precision"
    fi
done
latency latency-onnxruntime

echo "reports: $OUT/"
exit "$FAILED"
