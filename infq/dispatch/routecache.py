"""The routes a dispatcher applies, re-read from Postgres every few seconds.

`infq models route` and `rollback` write the route once; every dispatcher picks it up
within ``ROUTE_REFRESH_S`` without a restart. A failed read keeps the last routes (the
round itself then fails on the same Postgres and is retried).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from infq.db import routes as route_rows

log = logging.getLogger("infq.dispatcher")

ROUTE_REFRESH_S = 2.0


class RouteCache:
    """Stored routes by model, at most ``refresh_s`` old."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh_s: float = ROUTE_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._refresh_s = refresh_s
        self._clock = clock
        self._routes: dict[str, dict[str, int]] = {}
        self._read_at: float | None = None

    def get(self) -> dict[str, dict[str, int]]:
        """The routes, re-read when older than the refresh period."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh_s:
            try:
                with self._sessions() as session:
                    self._routes = route_rows.current(session)
                self._read_at = now
            except Exception:
                log.exception("could not read model routes; keeping the last ones")
        return self._routes
