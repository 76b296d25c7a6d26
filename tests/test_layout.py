"""The package layout: one subpackage per concern, imports flowing one way, a lazy public API, thin ``pages/``."""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lgg_core

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lgg_core"

# What each subpackage may import from lgg_core (besides itself and the root's private helpers).
ALLOWED = {
    "data": set(),
    "models": set(),
    "serving": {"data", "models"},
    "explain": {"data", "models"},
    "evaluation": {"data", "models", "serving", "explain"},
    "app": {"data", "models", "serving", "explain", "evaluation"},
    "training": {"data", "models", "serving", "explain", "evaluation"},
}
SUBPACKAGES = sorted(ALLOWED)
LAZY_PACKAGES = ["lgg_core", *(f"lgg_core.{name}" for name in SUBPACKAGES if name not in {"app", "models"})]


def _imported_rooms(path: Path) -> set[str]:
    """The first component under ``lgg_core`` of every module this file imports, relative imports resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            names = [".".join([*base, *(node.module or "").split(".")]).strip(".")]
            if node.module is None:  # "from . import a, b": each name is a submodule
                names = [".".join([*base, alias.name]) for alias in node.names]
        else:
            continue
        rooms |= {name.split(".")[1] for name in names if name.startswith("lgg_core.")}
    return rooms


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


@pytest.mark.parametrize("room", SUBPACKAGES)
def test_imports_flow_one_way(room: str) -> None:
    upward = {
        f"{path.relative_to(ROOT)} imports lgg_core.{other}"
        for path in (PACKAGE / room).rglob("*.py")
        for other in _imported_rooms(path) - ALLOWED[room] - {room, "_lazy"}
    }
    assert not upward


def test_evaluation_computes_without_plotting_or_streamlit() -> None:
    drawing = {f"{path.relative_to(ROOT)} imports {module}" for path in (PACKAGE / "evaluation").rglob("*.py")
               for module in _imported_modules(path) if module.split(".")[0] in {"plotly", "streamlit", "matplotlib"}}
    assert not drawing


def test_root_holds_few_modules_and_one_subpackage_per_concern() -> None:
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert len(modules) <= 3, modules
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(SUBPACKAGES)


def test_import_does_not_pull_torch() -> None:
    code = ("import sys, lgg_core, " + ", ".join(f"lgg_core.{n}" for n in SUBPACKAGES if n != "models")
            + "; heavy = {'torch', 'streamlit', 'onnxruntime'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_resolve(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ and set(module.__all__) <= set(dir(module))
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_public_api_is_what_the_cards_call() -> None:
    from lgg_core import load_predictor, pull  # noqa: F401  (the model card's two lines)

    template = (ROOT / "lgg_core/serving/model_card.md").read_text()
    assert "from lgg_core import load_predictor, pull" in template
    assert {"load_artifact", "evaluate", "list_models", "create_model"} <= set(lgg_core.__all__)


def test_pages_folder_holds_only_registered_pages() -> None:
    registered = set(re.findall(r'st\.Page\("(pages/[^"]+)"', (ROOT / "streamlit_app.py").read_text()))
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "pages").iterdir() if p.name != "__pycache__"}
    assert registered and present == registered


def test_every_page_imports_the_app_state() -> None:
    # lgg_core.app.state switches Streamlit out of its legacy pages/ mode on a cold start (see its module).
    for page in (ROOT / "pages").glob("*.py"):
        assert "lgg_core.app.state" in _imported_modules(page), page.name


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_import_sets_a_passive_openmp_wait_policy(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    code = "import os, lgg_core; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("room", SUBPACKAGES)
def test_no_circle_of_imports_inside_a_subpackage(room: str) -> None:
    """Modules of one concern import each other one way, also from inside functions (``__init__`` re-exports aside)."""
    from graphlib import CycleError, TopologicalSorter

    modules = {f"lgg_core.{room}.{p.stem}": p for p in (PACKAGE / room).glob("*.py") if p.stem != "__init__"}
    graph = {name: _imported_modules(path) & set(modules) - {name} for name, path in modules.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        pytest.fail(f"a circle of imports: {' -> '.join(err.args[1])}")
