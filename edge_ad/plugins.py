"""Extensions found through Python entry points, so the runtime can offer what another package
adds without importing it by name: the export toolchain's commands (``edge_ad.commands``) and
its torch reference for the parity gate (``edge_ad.references``). On the Jetson image, where the
toolchain's dependencies are absent, the commands still load (they import torch only when run)
and say what to install."""
from __future__ import annotations

import logging
from importlib.metadata import entry_points

log = logging.getLogger(__name__)


def load_all(group: str) -> dict[str, object]:
    """Every entry point of ``group`` that loads, by name."""
    found = {}
    for ep in entry_points(group=group):
        try:
            found[ep.name] = ep.load()
        except ImportError as exc:  # installed without what it needs: as if absent
            log.debug("entry point %s:%s not loaded: %s", group, ep.name, exc)
    return found


def load(group: str, name: str):
    """One entry point, or None when nothing provides it."""
    return load_all(group).get(name)
