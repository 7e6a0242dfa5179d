"""The import contract (pyproject's ``[tool.importlinter]``, docs/architecture.md) holds.

``make lint`` runs the same contracts; this test keeps them in ``make test`` too, so an
arrow from a lower package to a higher one, a cycle between sibling packages, or an
import of ``workers`` from a sender fails CI with the offending import named.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_every_import_contract_is_kept() -> None:
    done = _lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    # The same contract text on a copy of two layers: a data-access module that imports
    # the API is refused (the check can fail, and names the import).
    for name, body in {"infq/__init__.py": "", "infq/api/__init__.py": "",
                       "infq/api/app.py": "from infq.db import rows\n",
                       "infq/db/__init__.py": "",
                       "infq/db/rows.py": "import infq.api.app\n"}.items():  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = infq\n\n[importlinter:contract:layers]\n"
        "name = layers\ntype = layers\nlayers =\n    infq.api\n    infq.db\n"
    )
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "infq.db.rows -> infq.api.app" in done.stdout
