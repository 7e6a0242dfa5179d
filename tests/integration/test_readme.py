"""The README's examples run as written against the real stack.

Every code block the README marks with ``<!-- readme-test: bash -->`` or
``<!-- readme-test: python -->`` runs here, with ``KEY`` set to a tenant's API key and
the local stack's real addresses put where the README says ``localhost:8000`` (the API)
and ``localhost:9092`` (Kafka), and the session's jobs topic for ``infq.jobs``. A block
fails the test when it exits non-zero (the examples use ``curl -f``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infq.settings import Settings
from infq.tenants import Credentials

README = Path(__file__).parents[2] / "README.md"
MARKED = re.compile(r"<!-- readme-test: (bash|python) -->\n```(?:bash|python)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every marked block, in README order."""
    return [(m.group(1), m.group(2)) for m in MARKED.finditer(README.read_text())]


def test_the_readme_marks_its_runnable_examples() -> None:
    found = blocks()
    assert [lang for lang, _ in found].count("bash") >= 2
    assert [lang for lang, _ in found].count("python") >= 2


@pytest.mark.parametrize(("number", "language"), [(n, lang) for n, (lang, _) in
                                                  enumerate(blocks())])  # fmt: skip
def test_a_readme_example_runs_as_written(
    number: int,
    language: str,
    api: str,
    settings: Settings,
    tenants_made: dict[str, Credentials],
    tmp_path: Path,
) -> None:
    code = blocks()[number][1]
    code = code.replace("http://localhost:8000", api).replace("localhost:8000", api)
    code = code.replace("localhost:9092", settings.kafka)
    code = code.replace('"infq.jobs"', repr(settings.jobs_topic))
    env = {**os.environ, "KEY": tenants_made["alpha"].api_key}
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [
        sys.executable, "-c", code]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, f"README block {number} ({language}):\n{code}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it got"
