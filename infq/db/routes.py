"""Data access for model routes: which share of new jobs each revision gets.

``model_routes`` is append-only; a model's newest row is its route, and the rows before
it are its history (what ``infq models rollback`` goes back to). Functions take a
session and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class StoredRoute:
    """One row of a model's route history."""

    model: str
    route: dict[str, int]
    note: str | None
    set_at: datetime


def current(session: Session) -> dict[str, dict[str, int]]:
    """Every model's stored route (models never routed are absent)."""
    rows = session.execute(
        text("SELECT DISTINCT ON (model) model, route FROM model_routes ORDER BY model, id DESC")
    )
    return {r.model: {k: int(v) for k, v in r.route.items()} for r in rows}


def history(session: Session, model: str, *, limit: int = 10) -> list[StoredRoute]:
    """A model's routes, newest first."""
    rows = session.execute(
        text(
            "SELECT model, route, note, set_at FROM model_routes WHERE model = :m "
            "ORDER BY id DESC LIMIT :n"
        ),
        {"m": model, "n": limit},
    )
    return [StoredRoute(r.model, dict(r.route), r.note, r.set_at) for r in rows]


def store(session: Session, model: str, route: Mapping[str, int], *, note: str) -> None:
    """Make ``route`` the model's route (kept in its history)."""
    session.execute(
        text("INSERT INTO model_routes (model, route, note) VALUES (:m, CAST(:r AS jsonb), :note)"),
        {"m": model, "r": json.dumps(dict(route)), "note": note},
    )


def reroute_waiting(session: Session, model: str, *, away_from: list[str], to: str) -> int:
    """Move jobs waiting for revisions that lost their share to ``to``: jobs the route
    chose and no worker has started (pinned jobs stay). Their cache key is dropped,
    since it named the old revision: they are computed, not served from the cache."""
    if not away_from:
        return 0
    result = session.execute(
        text(
            "UPDATE jobs SET model_revision = :to, cache_key = NULL "
            "WHERE model = :m AND model_revision = ANY(:away) AND status = 'queued' "
            "AND NOT revision_pinned AND lease_expires_at IS NULL AND coalesced_into IS NULL"
        ),
        {"to": to, "m": model, "away": away_from},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revision_counts(session: Session, model: str) -> dict[tuple[str, str], int]:
    """Jobs per (revision, status) of one model (``infq models list``)."""
    rows = session.execute(
        text(
            "SELECT model_revision, status, count(*) AS n FROM jobs WHERE model = :m "
            "GROUP BY model_revision, status"
        ),
        {"m": model},
    )
    return {(r.model_revision or "", r.status): int(r.n) for r in rows}
