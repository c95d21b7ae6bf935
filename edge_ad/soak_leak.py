"""A deliberately leaking build, switched on only by ``EDGE_AD_SOAK_LEAK_MB_PER_MIN``.

It exists so that bench/soak.py can prove it catches a leak: a harness that has never seen a
FAIL may simply be blind. Nothing else sets the variable; unset, this module does nothing."""
from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)
ENV = "EDGE_AD_SOAK_LEAK_MB_PER_MIN"
PERIOD_S = 5.0  # small steps, so the growth reads as a slope rather than a few jumps


def _leak(mb_per_min: float, kept: list) -> None:
    chunk = int(mb_per_min * 2**20 * PERIOD_S / 60)
    while True:
        kept.append(bytearray(b"x") * chunk)  # filled, not zeroed: every page is touched, so RSS grows
        time.sleep(PERIOD_S)


def start_if_asked() -> bool:
    try:
        mb_per_min = float(os.environ.get(ENV, "0"))
    except ValueError:
        return False
    if not mb_per_min > 0:  # also refuses nan
        return False
    log.warning("%s=%g: this is a deliberately leaking build, meant only for bench/soak.py",
                ENV, mb_per_min)
    threading.Thread(target=_leak, args=(mb_per_min, []), name="soak-leak", daemon=True).start()
    return True
