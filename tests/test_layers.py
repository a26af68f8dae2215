"""The package's structure as the README draws it: layers that only import downwards, no
import cycles, nothing beneath the facade importing it, and modules a newcomer can read in
one sitting. The contracts themselves are in pyproject.toml (import-linter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dreamflare_store

PACKAGE = Path(dreamflare_store.__file__).parent
ROOT = PACKAGE.parent
MAX_LINES = 800  # the house limit (STYLE.md): about 800 lines


def test_import_contracts_are_kept() -> None:
    script = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_module_is_too_long_to_read() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in PACKAGE.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
