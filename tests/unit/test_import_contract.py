"""The shape of the code, guarded: the folders are the data flow, and the runtime that ships to
the Jetson never reaches for the training toolchain. Every import statement in edge_ad/ is read
(lazy ones inside functions too), so a rule cannot be dodged by importing late."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "edge_ad"


def _package(path: Path) -> str:
    dotted = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    return dotted if path.name == "__init__.py" else dotted.rsplit(".", 1)[0]


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, a module of ``package``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]  # from x import submodule
    return out


def _violations(folder: str, forbidden) -> list[str]:
    found = []
    for path in sorted((ROOT / folder if folder else ROOT).rglob("*.py")):
        for line, module in _imports(path, _package(path)):
            if forbidden(module):
                found.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    return found


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_runtime_never_imports_torch_or_the_export_toolchain():
    assert _violations("", lambda m: _under(m, "torch", "export", "torchvision", "timm")) == []


def test_the_decision_stage_imports_nothing_downstream():
    downstream = ("edge_ad.pipeline", "edge_ad.publish", "edge_ad.server", "edge_ad.plc")
    assert _violations("decision", lambda m: _under(m, *downstream)) == []


def test_front_ends_reach_the_service_only_through_its_port():
    def behind_the_port(m: str) -> bool:
        return _under(m, "edge_ad.pipeline", "edge_ad.publish") and not _under(
            m, "edge_ad.pipeline.port") and not _under(m, "edge_ad.publish.views.View")
    for front in ("server", "plc"):
        if (ROOT / front).is_dir():
            assert _violations(front, behind_the_port) == [], front


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    # the rules above are only as good as the parser: a lazy relative import must be resolved
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..pipeline import service\n    import torch\n")
    found = {m for _, m in _imports(probe, "edge_ad.server")}
    assert {"edge_ad.pipeline.service", "torch"} <= found


def test_public_classes_say_what_they_own_and_take_at_most_six_parameters():
    undocumented, wide = [], []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            where = f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}"
            if not ast.get_docstring(node):
                undocumented.append(where)
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
            if init is not None:
                count = len(init.args.args) - 1 + len(init.args.kwonlyargs)  # less self
                if count > 6:
                    wide.append(f"{where} takes {count}")
    assert undocumented == [] and wide == []
