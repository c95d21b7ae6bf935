"""What device this is: L4T release, JetPack, TensorRT version, GPU and compute capability.

Read from files and commands that exist on the device (no CUDA call), so `edge-ad check`,
`/v1/status` and the engine key can tell a Jetson Orin on JetPack 6.1 from a desktop without
loading anything. Every reader takes a root so tests run it against a fake filesystem.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

# L4T release → JetPack (NVIDIA's JetPack archive). Unknown releases show as None, not a guess.
JETPACK_BY_L4T = {
    "36.4.3": "6.2", "36.4.0": "6.1", "36.3.0": "6.0", "36.2.0": "6.0 DP",
    "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.2.1": "5.1",
    "35.1.0": "5.0.2", "32.7.6": "4.6.6", "32.7.5": "4.6.5", "32.7.4": "4.6.4", "32.7.3": "4.6.3",
}
# Tegra SoC → (GPU, CUDA compute capability)
TEGRA_GPU = {
    "tegra234": ("Orin (Ampere)", "8.7"),
    "tegra194": ("Xavier (Volta)", "7.2"),
    "tegra210": ("Nano/TX1 (Maxwell)", "5.3"),
    "tegra186": ("TX2 (Pascal)", "6.2"),
}


@dataclass(frozen=True)
class Platform:
    """What this machine is: device, GPU, compute capability, TensorRT and JetPack."""
    jetson: bool
    l4t: str | None
    jetpack: str | None
    tensorrt: str | None
    gpu: str | None
    compute_capability: str | None

    def to_json(self) -> dict:
        return asdict(self)


def l4t_release(root: Path = Path("/")) -> str | None:
    """``# R36 (release), REVISION: 4.0, GCID: ...`` in /etc/nv_tegra_release → ``36.4.0``."""
    try:
        text = (root / "etc/nv_tegra_release").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", text)
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else None


def tegra_soc(root: Path = Path("/")) -> str | None:
    """The SoC from the device tree's NUL-separated ``compatible`` list (``nvidia,tegra234``)."""
    try:
        entries = (root / "proc/device-tree/compatible").read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in entries:
        m = re.fullmatch(rb"nvidia,(tegra\d+)", entry.strip())
        if m:
            return m.group(1).decode()
    return None


def tensorrt_version() -> str | None:
    try:
        import tensorrt  # noqa: F401  (JetPack's python3-libnvinfer, or the x86 TensorRT image)
    except ImportError:
        return None
    return getattr(tensorrt, "__version__", None)


def discrete_gpu() -> tuple[str, str] | None:
    """(name, compute capability) of the first GPU from nvidia-smi, where there is one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    name, _, cc = first.rpartition(",")
    return (name.strip(), cc.strip()) if name else None


def detect(root: Path = Path("/")) -> Platform:
    l4t = l4t_release(root)
    soc = tegra_soc(root)
    jetson = l4t is not None or soc is not None
    gpu = TEGRA_GPU.get(soc) if soc else (None if jetson else discrete_gpu())
    if soc and gpu is None:
        gpu = (soc, None)
    return Platform(jetson, l4t, JETPACK_BY_L4T.get(l4t) if l4t else None, tensorrt_version(),
                    gpu[0] if gpu else None, gpu[1] if gpu else None)
