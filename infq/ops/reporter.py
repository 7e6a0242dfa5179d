"""Exports work remaining from a long-running process (dispatcher or scheduler), so
Prometheus and KEDA see the backlog without ``infq autoscale`` running."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from infq.metrics import families
from infq.ops.backlog import export, measure
from infq.ops.lag import LagWatcher
from infq.ops.policy import PolicyParams
from infq.settings import Settings

log = logging.getLogger("infq.ops")

REPORT_INTERVAL_S = 5.0


class WorkReporter:
    """Measures and exports every :data:`REPORT_INTERVAL_S` on a daemon thread."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._params = PolicyParams.from_settings(settings)
        self._stop = threading.Event()
        self._lag = LagWatcher(settings, interval_s=REPORT_INTERVAL_S)

    def start(self) -> WorkReporter:
        """Start the lag watcher and the export loop; returns self."""
        self._lag.start()
        threading.Thread(target=self._run, name="infq-work-reporter", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop both loops."""
        self._stop.set()
        self._lag.stop()

    def _run(self) -> None:
        s = self._settings
        while not self._stop.wait(REPORT_INTERVAL_S):
            try:
                with self._sessions() as session:
                    work = measure(session, kafka_lag=self._lag.value, stale_after_s=s.lease_s)
                export(work, families(), params=self._params, jobs_topic=s.jobs_topic)
            except Exception:
                log.warning("work remaining not measured", exc_info=True)
