"""The library does not know the commands: no module of a package beside reidtricks/cli imports
reidtricks.cli (only cli/ and the `python -m reidtricks.NAME` shims do)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "reidtricks"
LIBRARY = sorted(
    p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "cli"
)


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package` (dotted);
    relative imports resolved; `from X import Y` counts as X and as X.Y (Y may be a module)."""
    parts = package.split(".")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def is_cli(module: str) -> bool:
    return module == "reidtricks.cli" or module.startswith("reidtricks.cli.")


def cli_imports(path: Path) -> list[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for line, name in imported_modules(path.read_text(), package)
        if is_cli(name)
    ]


@pytest.mark.parametrize(("source", "imports_cli"), [
    ("import reidtricks.cli.app", True),
    ("from reidtricks.cli.app import one_line_errors", True),
    ("from reidtricks import cli", True),
    ("def main():\n    from reidtricks.cli.app import one_line_errors", True),  # inside a function
    ("from ...cli import app", True),  # in reidtricks.data.datasets: reidtricks.cli
    ("from ..cli import app", False),  # in reidtricks.data.datasets: reidtricks.data.cli
    ("from reidtricks.data import splits", False),
    ("import reidtricks.client", False),
])  # fmt: skip
def test_every_import_form_is_seen(source, imports_cli):
    names = [name for _, name in imported_modules(source, "reidtricks.data.datasets")]
    assert any(map(is_cli, names)) == imports_cli, names


def test_the_walk_covers_the_library_packages():
    assert {"data", "models", "evaluation", "training", "inference", "losses"} <= set(LIBRARY)


@pytest.mark.parametrize("package", LIBRARY)
def test_no_library_module_imports_the_commands(package):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files
    offending = [hit for py in files for hit in cli_imports(py)]
    assert not offending, offending
