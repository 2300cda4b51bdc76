"""The floors of docs/architecture.md: the layering contract (import-linter) and no cross-module private import."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "linflow"


def _lint_imports() -> str | None:
    here = Path(sys.executable).parent / "lint-imports"
    return str(here) if here.exists() else shutil.which("lint-imports")


@pytest.mark.skipif(_lint_imports() is None, reason="import-linter is not installed (pip install -e .[dev])")
def test_layering_contract_holds():
    """Each floor imports only the floors below it: cli > plot > paper > studies > core."""
    res = subprocess.run([_lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "1 kept, 0 broken" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(path: Path, source_text: str | None = None) -> list[str]:
    """``module: imported name`` for every private name (leading underscore) imported from another module of
    linflow, relative or absolute; a module's own ``__init__`` attributes such as ``__version__`` are not private."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source_text if source_text is not None else path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == "linflow" or source.startswith("linflow.")):
                continue
            found += [f"{name}: {source}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
            found += [f"{name}: {source}" for part in source.split(".") if part.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [f"{name}: {a.name}" for a in node.names
                      if a.name.startswith("linflow.") and any(p.startswith("_") for p in a.name.split(".")[1:])]
    return found


def test_no_module_imports_a_private_name_of_another():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"]
    assert len(modules) > 30
    offences = [x for p in modules for x in _private_imports(p)]
    assert not offences, offences


def _linflow_names(tree: ast.AST) -> dict:
    """name -> dotted linflow path, for every name a file binds by importing from linflow."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "linflow" or a.name.startswith("linflow."):
                    names[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "linflow":
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _private_reaches(source_text: str) -> list[str]:
    """Every private name of linflow a test file reaches: ``from linflow... import _x`` and ``module._x`` where
    ``module`` is a linflow module (resolved by importing it; ``fn._cache_size`` on a jitted function is JAX's)."""
    import importlib
    import inspect

    tree = ast.parse(source_text)
    names = _linflow_names(tree)
    found = [f"import {path}" for path in names.values() if any(p.startswith("_") and not p.startswith("__")
                                                                 for p in path.split("."))]

    def resolve(node):
        if isinstance(node, ast.Name) and node.id in names:
            path = names[node.id].split(".")
            obj = importlib.import_module(path[0])
            for part in path[1:]:
                obj = getattr(obj, part) if hasattr(obj, part) else importlib.import_module(
                    f"{obj.__name__}.{part}")
            return obj
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            return getattr(base, node.attr, None) if inspect.ismodule(base) else None
        return None

    reaches = sorted((node.lineno, ast.unparse(node)) for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                     and inspect.ismodule(resolve(node.value)))
    return found + [f"{text} (line {line})" for line, text in reaches]


def test_tests_use_the_public_api_only():
    """The architecture rule applied to tests/: no test reaches a private name of linflow."""
    offences = {p.name: r for p in sorted((ROOT / "tests").glob("*.py")) if (r := _private_reaches(p.read_text()))}
    assert not offences, offences


def test_the_tests_private_reach_check_catches_both_forms():
    text = ("import linflow\nfrom linflow.core import central\nfrom linflow.core.descent import _Built\n"
            "central._eigen(1)\nlinflow.core.descent._steps\ncentral.central_flow._cache_size()\n")
    assert _private_reaches(text) == ["import linflow.core.descent._Built", "central._eigen (line 4)",
                                      "linflow.core.descent._steps (line 5)"]


def test_the_private_import_check_catches_one():
    probe = PACKAGE / "studies" / "probe.py"  # not written: the check reads the given text as that module's
    text = "from .comparison import _private_helper\nfrom ..core import runs as _runs\nimport linflow.core._hidden\n"
    assert _private_imports(probe, text) == ["linflow.studies.probe: linflow.studies.comparison._private_helper",
                                             "linflow.studies.probe: linflow.core._hidden"]


def test_every_module_is_named_in_the_architecture_page():
    page = (ROOT / "docs" / "architecture.md").read_text()
    modules = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    missing = [m for m in modules if f"`{m}`" not in page]
    assert not missing, f"docs/architecture.md's module map lacks {missing}"
    named = set(__import__("re").findall(r"^\| `([a-z_/0-9]+\.py)` \|", page, flags=__import__("re").M))
    assert named == set(modules), sorted(named ^ set(modules))  # and names no module that is gone
