"""The documentation cannot drift from the code, and its site builds.

The settings tables and the API reference are generated (``make docs`` rewrites them);
these tests fail while a committed page differs from what the code renders, so a new
setting, route or status code is documented in the code and the page regenerated. The
site is built as ``make docs`` builds it (``mkdocs build --strict``: a broken link, a
missing anchor or a page outside the navigation fails), and every relative link in the
markdown itself must resolve too: GitHub shows the files, not the site.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from infq.api import reference as api_reference
from infq.settings import GROUPS, Settings
from infq.settings import reference as settings_reference

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# A first hour's reading; the rest belongs on a page under docs/.
README_MAX_LINES = 400

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"<!--.*?-->", re.S)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def slug(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc (mkdocs) makes it; GitHub's agrees
    for headings of words, spaces, hyphens and punctuation."""
    text = (
        unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode()
    )
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's own headings (outside code blocks)."""
    return {slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8")))}


def test_the_settings_tables_are_the_code_s() -> None:
    for page in settings_reference.PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        assert settings_reference.update_page(text) == text, (
            f"{page}: the settings table is out of date; run `make docs` "
            "(or `python -m infq.settings.reference`)"
        )


def test_every_setting_has_a_description_and_a_group() -> None:
    grouped = [name for group in GROUPS for name in group.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields)
    assert len(grouped) == len(set(grouped)), "a setting in two groups"
    assert [group for group in Settings.__mro__ if group in GROUPS] == list(GROUPS)
    undescribed = [name for name, f in Settings.model_fields.items() if not f.description]
    assert undescribed == []


def test_the_essential_settings_are_settings() -> None:
    assert set(settings_reference.ESSENTIAL) <= set(Settings.model_fields)


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no generated block"):
        settings_reference.update_page("# Configuration\n")


def test_the_api_reference_is_the_openapi_schema_s() -> None:
    committed = (ROOT / api_reference.PAGE).read_text(encoding="utf-8")
    assert api_reference.render(api_reference.openapi()) == committed, (
        "docs/api.md is out of date; run `make docs` (or `python -m infq.api.reference`)"
    )


def test_the_api_reference_names_every_route() -> None:
    spec = api_reference.openapi()
    page = (ROOT / api_reference.PAGE).read_text(encoding="utf-8")
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in page


def test_the_readme_is_a_first_hour_s_reading() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move a section to docs/"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    text = CODE_SPAN.sub("", FENCE.sub("", COMMENT.sub("", path.read_text(encoding="utf-8"))))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto: — not ours to check offline
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no file {linked.relative_to(ROOT)})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor})")
    assert broken == [], f"{path.relative_to(ROOT)}: broken links {broken}"


def test_the_site_builds_strictly_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is a dev dependency: pip install -e '.[dev]'")
    pytest.importorskip("material", reason="mkdocs-material is a dev dependency")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,  # the README snippets are read relative to the repository root
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").is_file()
    # The README sections the home page includes arrived, not the include lines.
    home = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "make demo" in home
    assert "--8&lt;--" not in home
    assert "--8<--" not in home
