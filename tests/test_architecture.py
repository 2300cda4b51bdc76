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
    """core imports nothing above it; studies and paper import the core, never each other; cli and plot on top."""
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
    assert _private_imports(modules[0]) is not None
    offences = [x for p in modules for x in _private_imports(p)]
    assert not offences, offences


def test_the_private_import_check_catches_one():
    probe = PACKAGE / "studies" / "probe.py"  # not written: the check reads the given text as that module's
    text = "from .comparison import _private_helper\nfrom ..core import runs as _runs\nimport linflow.core._hidden\n"
    assert _private_imports(probe, text) == ["linflow.studies.probe: linflow.studies.comparison._private_helper",
                                             "linflow.studies.probe: linflow.core._hidden"]
