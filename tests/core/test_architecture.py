"""The house by area holds: no import cycles, no import hidden in a function to dodge one, and the import
contracts of `make lint` (.importlinter) fail when an arrow points the wrong way."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT_ROOT / "meander_site"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_no_module_of_the_site_imports_itself_back_even_through_imports_inside_functions():
    # grimp reads every import statement, at the top of a module or inside a function alike.
    graph = grimp.build_graph("meander_site", include_external_packages=False)
    cycles = [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if graph.chain_exists(importer=imported, imported=importer)
    ]
    assert cycles == []


def test_the_site_imports_its_own_modules_only_at_the_top_of_a_module():
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in top_level:
                continue
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
            if (isinstance(node, ast.ImportFrom) and node.level) or any(n.startswith("meander_site") for n in names):
                hidden.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert hidden == []


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / ".importlinter")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.subprocess
def test_the_import_contracts_hold_and_fail_on_a_wrong_arrow(tmp_path):
    assert lint_imports(PROJECT_ROOT).returncode == 0, lint_imports(PROJECT_ROOT).stdout[-3000:]

    # A throwaway copy with one arrow pointing up: the lead domain reaching for the board.
    copy = tmp_path / "site"
    shutil.copytree(PACKAGE, copy / "meander_site", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / ".importlinter", copy / ".importlinter")
    statuses = copy / "meander_site" / "leads" / "statuses.py"
    statuses.write_text(statuses.read_text() + "\nfrom ..pipeline import board  # noqa: E402,F401\n")

    result = lint_imports(copy)
    assert result.returncode != 0
    assert "meander_site.leads is not allowed to import meander_site.pipeline" in result.stdout
