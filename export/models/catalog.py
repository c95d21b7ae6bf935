"""The families, discovered without importing torch: every class in this folder that sets
``family = "..."`` is one. ``edge-ad --help`` and argparse's choices read this; ``create`` in
base.py imports the modules and builds them. A new family is one new file here."""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

# knn's random bank with the place map beside it. The bank alone measured ahead of patchcore's
# k-centre coreset on both benchmarks (docs/benchmarks.md#the-default-family-knn-2026-12-04); the
# place map lifts the hard benchmark's missing and moved components from 0.476 to 0.791 with the
# line videos still clean (docs/benchmarks.md#the-default-family-knnplace-2026-12-04).
DEFAULT_FAMILY = "knnplace"


def _families_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        and getattr(stmt.targets[0], "id", None) == "family"
                        and isinstance(stmt.value, ast.Constant) and stmt.value.value):
                    found.append(stmt.value.value)
    return found


@lru_cache(maxsize=1)
def family_names() -> tuple[str, ...]:
    here = Path(__file__).parent
    return tuple(sorted(f for p in here.glob("*.py") if p.name not in ("base.py", "catalog.py")
                        for f in _families_in(p)))


def family_modules() -> tuple[str, ...]:
    """The modules that define a family (base.families() imports them)."""
    here = Path(__file__).parent
    return tuple(sorted(p.stem for p in here.glob("*.py")
                        if p.name not in ("base.py", "catalog.py", "__init__.py") and _families_in(p)))
