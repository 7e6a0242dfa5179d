"""mkdocs hook: ``\\|`` inside code in a table cell reads as ``|``, as on GitHub.

GitHub's tables need a pipe in a code span escaped (``\\|``) and drop the backslash;
Python-Markdown needs no escape there and keeps it, so the same page would show
``infq stack up \\| status`` on the site. This hook removes the backslash from code in
the rendered HTML, so one markdown source reads right in both places.
"""

from __future__ import annotations

import re
from typing import Any

_CELL = re.compile(r"<t[dh]\b[^>]*>.*?</t[dh]>", re.S)
_CODE = re.compile(r"<code>(.*?)</code>", re.S)


def on_page_content(html: str, **_: Any) -> str:
    """The page's HTML with ``\\|`` in code inside table cells turned into ``|`` (code
    blocks keep theirs: there a backslash means what it says)."""
    return _CELL.sub(lambda cell: _CODE.sub(_unescape, cell.group(0)), html)


def _unescape(code: re.Match[str]) -> str:
    return "<code>" + code.group(1).replace("\\|", "|") + "</code>"
