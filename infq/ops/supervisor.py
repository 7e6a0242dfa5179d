"""Child processes under one supervisor, with one log view.

Each child runs in its own process group (a signal to the supervisor's terminal does
not reach it directly); its output is read line by line and written to one sink with
the child's name in front. Stopping is a drain: SIGTERM, then SIGKILL after the grace
period (an infq process finishes or hands back its work on SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

Sink = Callable[[str, str], None]  # (child name, line)


def file_sink(log: IO[str]) -> Sink:
    """A sink writing ``name | line`` to ``log`` (thread-safe: one writer per child)."""
    lock = threading.Lock()

    def write(name: str, line: str) -> None:
        with lock:
            log.write(f"{name:<11}| {line}\n")
            log.flush()

    return write


def infq_argv(*args: str) -> list[str]:
    """``python -m infq ARGS`` with this interpreter."""
    return [sys.executable, "-m", "infq", *args]


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    started_at: float
    stop_deadline: float | None = None  # set once asked to stop
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        """Still running."""
        return self.proc.poll() is None

    @property
    def draining(self) -> bool:
        """Asked to stop, not yet gone."""
        return self.stop_deadline is not None and self.alive


class Supervisor:
    """Starts, drains, reaps and restarts children; see the module docstring."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self.children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
        meta: dict[str, str] | None = None,
    ) -> Child:  # fmt: skip
        """Start ``argv`` as child ``name`` (environment: ours plus ``env``)."""
        extra = dict(env or {})
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = Child(name, list(argv), extra, proc, time.monotonic(), meta=dict(meta or {}))
        assert proc.stdout is not None
        threading.Thread(
            target=self._pump, args=(name, proc.stdout), name=f"log-{name}", daemon=True
        ).start()
        with self._lock:
            self.children.append(child)
        self._sink("supervisor", f"started {name} pid={proc.pid}")
        return child

    def drain(self, child: Child, *, grace_s: float) -> None:
        """Ask ``child`` to stop (SIGTERM); it is killed if still alive after ``grace_s``."""
        if child.stop_deadline is not None or not child.alive:
            return
        child.stop_deadline = time.monotonic() + grace_s
        self._signal(child, signal.SIGTERM)
        self._sink("supervisor", f"draining {child.name} pid={child.proc.pid}")

    def reap(self) -> list[Child]:
        """Forget children that exited (returned); kill those past their grace period."""
        now = time.monotonic()
        gone: list[Child] = []
        with self._lock:
            for child in list(self.children):
                if child.alive:
                    if child.stop_deadline is not None and now > child.stop_deadline:
                        self._signal(child, signal.SIGKILL)
                    continue
                self.children.remove(child)
                gone.append(child)
        for child in gone:
            how = "stopped" if child.stop_deadline is not None else "exited unexpectedly"
            self._sink("supervisor", f"{child.name} {how} (code {child.proc.returncode})")
        return gone

    def stop_all(self, *, grace_s: float) -> None:
        """Drain every child and wait for them (SIGKILL after ``grace_s``)."""
        self.stop(list(self.children), grace_s=grace_s)

    def stop(self, children: Sequence[Child], *, grace_s: float) -> None:
        """Drain ``children`` and wait for them (SIGKILL after ``grace_s``)."""
        for child in children:
            self.drain(child, grace_s=grace_s)
        deadline = time.monotonic() + grace_s + 5
        while any(c.alive for c in children) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        for child in children:
            if child.alive:
                self._signal(child, signal.SIGKILL)
        self.reap()

    def _signal(self, child: Child, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sig == signal.SIGKILL:
                os.killpg(child.proc.pid, sig)
            else:
                child.proc.send_signal(sig)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._sink(name, raw.decode("utf-8", "replace").rstrip())
        stream.close()
