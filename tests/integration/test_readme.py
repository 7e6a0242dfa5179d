"""The documentation's examples run as written against the real stack.

Every code block that ``README.md`` or a page under ``docs/`` marks with
``<!-- readme-test: bash -->`` or ``<!-- readme-test: python -->`` runs here, with
``KEY`` set to a tenant's API key and the local stack's real addresses put where the
docs say ``localhost:8000`` (the API) and ``localhost:9092`` (Kafka), and the session's
jobs topic for ``infq.jobs``. A block fails the test when it exits non-zero (the
examples use ``curl -f``). A README section that a page includes (``--8<--``) is run
once, from the README, where its text lives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infq.settings import Settings
from infq.tenants.accounts import Credentials

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKED = re.compile(r"<!-- readme-test: (bash|python) -->\n```(?:bash|python)\n(.*?)```", re.S)


def documents() -> list[Path]:
    """The README, then every page under docs/, in a stable order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(document: Path) -> list[tuple[str, str]]:
    """(language, code) of every marked block of one document, in its order."""
    return [(m.group(1), m.group(2)) for m in MARKED.finditer(document.read_text())]


def every_block() -> list[tuple[str, int, str]]:
    """(document relative to the repository, block index, language) of every marked block."""
    return [
        (str(document.relative_to(ROOT)), number, language)
        for document in documents()
        for number, (language, _) in enumerate(blocks(document))
    ]


def test_the_docs_mark_their_runnable_examples() -> None:
    # Two bash and three python blocks when the README was split into pages: the REST
    # API's curl examples, the SDK client, Kafka from Python and the OpenAI SDK.
    found = [language for _, _, language in every_block()]
    assert found.count("bash") >= 2
    assert found.count("python") >= 3


@pytest.mark.parametrize(("document", "number", "language"), every_block())
def test_a_documented_example_runs_as_written(
    document: str,
    number: int,
    language: str,
    api: str,
    settings: Settings,
    tenants_made: dict[str, Credentials],
    tmp_path: Path,
) -> None:
    code = blocks(ROOT / document)[number][1]
    code = code.replace("http://localhost:8000", api).replace("localhost:8000", api)
    code = code.replace("localhost:9092", settings.kafka)
    code = code.replace('"infq.jobs"', repr(settings.jobs_topic))
    env = {**os.environ, "KEY": tenants_made["alpha"].api_key}
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [
        sys.executable, "-c", code]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, f"{document} block {number} ({language}):\n{code}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it got"
