"""``infq demo`` placeholder, replaced below."""

from __future__ import annotations


def demo() -> None:
    """Run the demo."""
