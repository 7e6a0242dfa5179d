"""Logging setup for entry points: one line per event, key=value fields, no payloads."""

from __future__ import annotations

import logging


def configure(level: str) -> None:
    """Configure the root logger once, in an entry point."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # kafka-python is chatty at INFO about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)
