"""Crashes before the claim, attributed: a journal of the jobs being measured.

A worker measures a message's jobs (tokenizes them, for token budgets) when it
receives them, before any claim: a process-killing input there (a segfault or an
abort in a native tokenizer) left nothing in Postgres to count, its lease ran out, it
was handed out again and killed the next process the same way — forever, with a model
load each time.

So the jobs being measured are named in a file first, one per process and thread, and
the file is removed once they are measured. A process that starts finds the files of
processes that are gone and charges those jobs an attempt (:func:`charge_the_dead`):
ordinary attempts, so after ``max_attempts`` the job fails ``worker_lost`` like a
crash in the forward pass. A job that already cost
an attempt is measured alone, so from its second crash on only the input that kills
the process is named, and its neighbours are charged once at most.

The folder must outlive the process (``INFQ_WORKER_STATE_DIR``: on Kubernetes an
``emptyDir``, which survives container restarts). Files of processes on another host
are never read; a host that is gone takes its files with it, and those jobs come back
uncharged, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson
from sqlalchemy.orm import Session, sessionmaker

from infq.db import scheduling
from infq.settings import Settings

log = logging.getLogger("infq.worker")

PREFIX = "measuring-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


class MeasureJournal:
    """See the module docstring. Cheap: one small file write per message measured."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._warned = False
        with contextlib.suppress(OSError):  # then each write warns once, below
            self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self) -> Path:
        return self.folder / f"{PREFIX}{os.getpid()}-{threading.get_ident()}.json"

    @contextlib.contextmanager
    def measuring(self, job_ids: Sequence[str]) -> Iterator[None]:
        """Name ``job_ids`` while the block runs (the file stays if the process dies)."""
        path = self._path()
        try:
            path.write_bytes(orjson.dumps(list(job_ids)))
        except OSError as e:  # a full or read-only disk must not stop the work
            if not self._warned:
                log.warning("cannot write the measuring journal in %s: %s", self.folder, e)
                self._warned = True
            yield
            return
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def take_left_by_the_dead(self) -> dict[Path, list[uuid.UUID]]:
        """The jobs processes that are gone were measuring when they died, by the file
        that named them, each file taken once (renamed first), even by two processes
        starting at once; :meth:`settle` or :meth:`give_back` them after."""
        found: dict[Path, list[uuid.UUID]] = {}
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob(f"{PREFIX}*.json")):
            try:
                pid = int(path.name.removeprefix(PREFIX).split("-", 1)[0])
            except ValueError:
                continue
            if _alive(pid):
                continue
            taken = path.with_name(f"taken-{os.getpid()}-{path.name}")
            try:
                path.rename(taken)
                found[taken] = [uuid.UUID(str(i)) for i in orjson.loads(taken.read_bytes())]
            except FileNotFoundError:
                continue  # another starter took it
            except (orjson.JSONDecodeError, ValueError, TypeError):
                log.warning("unreadable measuring journal %s; ignored", path.name)
                taken.unlink(missing_ok=True)
        return found

    def settle(self, taken: Iterable[Path]) -> None:
        """Forget files whose jobs were charged."""
        for path in taken:
            path.unlink(missing_ok=True)

    def give_back(self, taken: Iterable[Path]) -> None:
        """Put files back for the next start (charging them failed)."""
        for path in taken:
            with contextlib.suppress(OSError):
                path.rename(path.with_name(path.name.split("-", 2)[2]))


def journal_for(settings: Settings) -> MeasureJournal:
    """This deployment's journal: a folder per database, so workers of two infqs on one
    host (or two test worlds) never charge each other's jobs."""
    tag = hashlib.sha256(settings.database.encode()).hexdigest()[:12]
    return MeasureJournal(settings.worker_state_dir / tag)


def charge_the_dead(
    sessions: sessionmaker[Session], journal: MeasureJournal, *, max_attempts: int
) -> list[uuid.UUID]:
    """At a worker's start: an attempt for each job a dead process was measuring; the
    ones out of attempts fail ``worker_lost`` (the outbox announces them). Returns those."""
    taken = journal.take_left_by_the_dead()
    ids = sorted({job for jobs in taken.values() for job in jobs})
    if not ids:
        journal.settle(taken)
        return []
    try:
        with sessions.begin() as session:
            failed = scheduling.charge_lost(session, ids, max_attempts=max_attempts)
    except Exception:
        journal.give_back(taken)
        raise
    journal.settle(taken)
    log.warning("a worker died measuring %d jobs: each charged an attempt, %d failed "
                "worker_lost", len(ids), len(failed))  # fmt: skip
    return failed
