#!/usr/bin/env bash
# Prepare a Jetson (JetPack 6) to run edge-ad in a container. Idempotent: it changes only what
# is not already right and says what it changed; a second run changes nothing.
#
#   sudo jetson/setup_host.sh [--power-mode N] [--clocks] [--user NAME] [--dry-run]
#
#   --power-mode N  nvpmodel mode to set (0 is MAXN on Orin; see /etc/nvpmodel.conf); default: leave
#   --clocks        pin clocks at their maximum with jetson_clocks (until the next reboot)
#   --user NAME     account to put in the video group (default: the sudo caller)
#   --dry-run       say what would change, change nothing
#
# EDGE_AD_ROOT prefixes every file path (the tests run it against a scratch directory).
set -euo pipefail

ROOT="${EDGE_AD_ROOT:-}"
SERVICE_UID=10001
POWER_MODE=""
CLOCKS=0
DRY_RUN=0
TARGET_USER="${SUDO_USER:-}"
CHANGES=0

say() { printf 'setup_host: %s\n' "$*"; }
die() { printf 'setup_host: error: %s\n' "$*" >&2; exit 1; }
# change DESCRIPTION COMMAND...: run COMMAND (or only say it, with --dry-run) and count it
change() {
    local what="$1"
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 1 ]; then
        say "would: $what"
    else
        say "$what"
        "$@"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --power-mode) POWER_MODE="${2:?--power-mode needs a number}"; shift 2 ;;
        --clocks) CLOCKS=1; shift ;;
        --user) TARGET_USER="${2:?--user needs a name}"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# 1. a Jetson, and which L4T
release_file="$ROOT/etc/nv_tegra_release"
[ -f "$release_file" ] || die "not a Jetson: $release_file is missing"
say "L4T $(head -n 1 "$release_file" | sed -E 's/^# *//')"

# 2. the NVIDIA container runtime (JetPack's nvidia-container-toolkit), and Docker told about it
command -v nvidia-container-runtime >/dev/null \
    || die "nvidia-container-runtime not found: sudo apt-get install nvidia-container-toolkit"
daemon_json="$ROOT/etc/docker/daemon.json"
want_runtime() {
    python3 - "$daemon_json" "$1" <<'PY'
import json, sys
path, mode = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    cfg = {}
ok = cfg.get("runtimes", {}).get("nvidia", {}).get("path") == "nvidia-container-runtime" \
    and cfg.get("default-runtime") == "nvidia"
if mode == "check":
    sys.exit(0 if ok else 1)
cfg.setdefault("runtimes", {})["nvidia"] = {"path": "nvidia-container-runtime", "runtimeArgs": []}
cfg["default-runtime"] = "nvidia"  # docker build steps see the GPU too
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
PY
}
write_runtime() {
    mkdir -p "$(dirname "$daemon_json")"
    want_runtime write
}
if ! want_runtime check; then
    change "make nvidia the default Docker runtime in $daemon_json (restart docker to apply)" write_runtime
fi

# 3. power mode and clocks
if [ -n "$POWER_MODE" ]; then
    current_mode="$(nvpmodel -q 2>/dev/null | tail -n 1 | tr -dc '0-9')"
    if [ "$current_mode" != "$POWER_MODE" ]; then
        change "power mode $current_mode -> $POWER_MODE (nvpmodel)" nvpmodel -m "$POWER_MODE"
    fi
fi
if [ "$CLOCKS" = 1 ]; then
    change "pin clocks at maximum (jetson_clocks; until reboot)" jetson_clocks
fi

# 4. cameras: video devices readable by the video group, and the operator in that group
rules="$ROOT/etc/udev/rules.d/99-edge-ad-cameras.rules"
rule='SUBSYSTEM=="video4linux", GROUP="video", MODE="0660"'
write_udev_rule() {
    mkdir -p "$(dirname "$rules")"
    printf '%s\n' "$rule" >"$rules"
    udevadm control --reload
    udevadm trigger --subsystem-match=video4linux
}
if [ "$(cat "$rules" 2>/dev/null)" != "$rule" ]; then
    change "camera permissions: $rules" write_udev_rule
fi
if [ -n "$TARGET_USER" ] && ! id -nG "$TARGET_USER" | tr ' ' '\n' | grep -qx video; then
    change "add $TARGET_USER to the video group (log in again to apply)" usermod -aG video "$TARGET_USER"
fi
if command -v systemctl >/dev/null && ! systemctl is-active --quiet nvargus-daemon; then
    say "warning: nvargus-daemon is not running: CSI cameras (csi://) need it (sudo systemctl enable --now nvargus-daemon)"
fi

# 5. where the data lives: config, models, journal and evidence, owned by the container's user
for dir in config models data; do
    path="$ROOT/var/lib/edge-ad/$dir"
    if [ ! -d "$path" ]; then
        change "create $path" mkdir -p "$path"
    fi
    if [ "$(id -u)" = 0 ] && [ -d "$path" ] && [ "$(stat -c %u "$path")" != "$SERVICE_UID" ]; then
        change "owner of $path -> $SERVICE_UID (the container's user)" chown "$SERVICE_UID:$SERVICE_UID" "$path"
    fi
done

if [ "$CHANGES" = 0 ]; then
    say "nothing to change: this Jetson is ready for edge-ad"
elif [ "$DRY_RUN" = 1 ]; then
    say "$CHANGES changes would be made (run without --dry-run)"
else
    say "$CHANGES changes made"
fi
