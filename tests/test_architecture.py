"""The layout holds: no import cycles, one name per module, a torch-free serving path, and no
document that points outside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "engine": "dyadic.engine",
    "models": "dyadic.models",
    "renderer": "dyadic.renderer",
    "datasets": "dyadic.datasets",
}


def _modules() -> dict[str, Path]:
    """dyadic module name -> its file, for every module of the four packages."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The dyadic modules `name` imports, anywhere in its file (lazy imports count too)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_cycles_between_modules():
    assert _cycles(_graph()) == []


def test_no_import_cycles_between_packages():
    """Packages: each of the four, and each subpackage of the engine (pipeline, webrtc, ...)."""
    modules = _modules()

    def package(name: str) -> str:
        return name if modules[name].name == "__init__.py" else name.rsplit(".", 1)[0]

    between = defaultdict(set)
    for src, targets in _graph().items():
        for dst in targets:
            if package(src) != package(dst):
                between[package(src)].add(package(dst))
    assert _cycles(dict(between)) == []


def test_no_two_modules_share_a_name_nor_take_the_standard_librarys():
    """The packages' modules, the benchmarks and the scripts (run with their folder on sys.path,
    where a `profile.py` would hide the standard library's from cProfile)."""
    names = defaultdict(list)
    for name, path in _modules().items():
        if path.name != "__init__.py" and not path.name.startswith("__"):
            names[path.stem].append(name)
    for folder in ("bench", "scripts"):
        for path in sorted((ROOT / folder).glob("*.py")):
            names[path.stem].append(f"{folder}/{path.name}")
    assert {n: m for n, m in names.items() if len(m) > 1} == {}
    assert sorted(set(names) & set(sys.stdlib_module_names)) == []


def test_serving_imports_no_torch():
    """The live server and the ONNX runtime import no torch (training and skinning do, elsewhere)."""
    code = (
        "import sys; import dyadic.engine.serve.server, dyadic.models.runtime, dyadic.models.config; "
        "from dyadic.models.runtime import load_runtime; from dyadic.models.shipped import default_model_path; "
        "load_runtime(default_model_path('seamless'), 'cpu'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_nothing_points_outside_the_repository():
    """A clone has no ../shared/: README, docs and docstrings stand alone."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = []
    for rel in tracked.split():
        if rel.endswith((".py", ".md", ".js", ".html", ".sh", ".toml")) and rel != "tests/test_architecture.py":
            text = (ROOT / rel).read_text(errors="replace")
            if "DESIGN.md" in text or re.search(r"shared/|reference/\w+\.md", text):
                offenders.append(rel)
    assert offenders == []
