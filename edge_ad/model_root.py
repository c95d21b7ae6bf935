"""Which bundles a running service may load: only directories under the model root, every file
in them really there (no link out of the root), with one answer for every refusal, so that
the error text never tells a client which directories exist."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BundleError

REFUSED = "no bundle at that path under the model root (models.root)"


class BundleRefused(BundleError):
    """The path is not a bundle under the model root (answered 404, with REFUSED)."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confined_bundle(path: str | Path, root: str | Path) -> Path:
    """``path`` (relative paths are taken from the root) if it and everything in it resolve
    inside ``root``; links that stay inside, such as a ``bundle`` link to the version in use,
    are fine. Raises BundleRefused(REFUSED) otherwise."""
    root_real = os.path.realpath(root)
    candidate = Path(path) if Path(path).is_absolute() else Path(root) / path
    real = os.path.realpath(candidate)
    if not _inside(real, root_real) or not os.path.isdir(real):
        raise BundleRefused(REFUSED)
    for folder, dirs, files in os.walk(real):
        for name in dirs + files:
            if not _inside(os.path.realpath(os.path.join(folder, name)), root_real):
                raise BundleRefused(REFUSED)
    return candidate
