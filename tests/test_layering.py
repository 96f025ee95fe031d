"""The library stays free of orchestration: importing every ``pngnn`` module loads no Prefect."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pngnn

PROBE = """
import importlib, pkgutil, sys
import pngnn
names = sorted(m.name for m in pkgutil.walk_packages(pngnn.__path__, "pngnn."))
for name in names:
    importlib.import_module(name)
print(len(names), "modules")
print(sorted(m for m in sys.modules if m == "prefect" or m.startswith(("prefect.", "flows", "tasks."))))
"""


def test_no_pngnn_module_imports_prefect():
    modules = [m.name for m in pkgutil.walk_packages(pngnn.__path__, "pngnn.")]
    assert {"pngnn.app.cli", "pngnn.training.outcome", "pngnn.tracking.runs", "pngnn.augment.step"} <= set(modules)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True)
    count, loaded = out.stdout.strip().splitlines()[-2:]
    assert int(count.split()[0]) == len(modules)
    assert loaded == "[]", f"pngnn pulled in orchestration modules: {loaded}"


def test_no_pngnn_source_imports_orchestration_even_lazily():
    """An import inside a function escapes the check above until the function runs: read every
    import statement of the library's source as well."""
    import ast
    from pathlib import Path

    root = Path(pngnn.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in {"prefect", "prefect_dask", "flows", "tasks"}]
    assert len(list(root.rglob("*.py"))) > 30
    assert found == []
