"""``infq stack up | status | down``: start, find and stop the local services.

What runs is recorded in ``<stack_dir>/stack.json`` (pids, ports, URLs). ``up`` reuses
every recorded service that is alive and healthy, so a second ``up`` starts nothing;
ports are chosen free at first start and then kept, so two checkouts on one machine
never collide. ``down`` stops only pids recorded there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from infq.errors import StackError
from infq.settings import STACK_FILE_NAME
from infq.stack.processes import free_port, is_alive, port_is_free, wait_until
from infq.stack.services import Service, all_services

HEALTH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceState:
    """One service as recorded and as observed now."""

    name: str
    port: int
    pid: int | None
    alive: bool
    healthy: bool
    started_now: bool = False


class Stack:
    """The local stack rooted at ``stack_dir``."""

    def __init__(self, stack_dir: Path, *, ports: dict[str, int] | None = None) -> None:
        self.stack_dir = stack_dir
        self.ports = ports or {}
        self.services = all_services()

    @property
    def record_path(self) -> Path:
        """``stack.json``."""
        return self.stack_dir / STACK_FILE_NAME

    def _read(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            return {"services": {}, "urls": {}}
        data: dict[str, Any] = json.loads(self.record_path.read_text())
        return data

    def _write(self, record: dict[str, Any]) -> None:
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
        tmp.replace(self.record_path)

    def _check(self, service: Service, port: int) -> bool:
        try:
            return service.healthy(port=port)
        except Exception:
            return False

    def up(self) -> list[ServiceState]:
        """Start what is not running; reuse what is. Raises StackError naming the log."""
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        record = self._read()
        states = []
        for service in self.services:
            entry = record["services"].get(service.name, {})
            pid, port = entry.get("pid"), entry.get("port")
            if (
                port
                and is_alive(pid, name_hint=service.process_hint)
                and wait_until(partial(self._check, service, port), timeout_s=10)
            ):
                states.append(ServiceState(service.name, port, pid, True, True))
                continue
            port = self._choose_port(service.name, port)
            started = service.start(port=port, stack_dir=self.stack_dir)
            ok = wait_until(partial(self._check, service, port), timeout_s=HEALTH_TIMEOUT_S)
            if not ok:
                log = self.stack_dir / "logs" / f"{service.name}.log"
                raise StackError(service.name, f"not healthy on port {port}; see {log}")
            record["services"][service.name] = {"pid": started.pid, "port": port}
            record["urls"].update(service.urls(port=port))
            self._write(record)
            states.append(ServiceState(service.name, port, started.pid, True, True, True))
        return states

    def _choose_port(self, name: str, recorded: int | None) -> int:
        wanted = self.ports.get(name, 0)
        if wanted:
            if not port_is_free(wanted):
                raise StackError(name, f"configured port {wanted} is in use")
            return wanted
        if recorded and port_is_free(recorded):
            return recorded
        return free_port()

    def status(self) -> list[ServiceState]:
        """What is recorded, and whether each is alive and healthy now."""
        record = self._read()
        states = []
        for service in self.services:
            entry = record["services"].get(service.name)
            if not entry:
                states.append(ServiceState(service.name, 0, None, False, False))
                continue
            pid, port = entry.get("pid"), int(entry["port"])
            alive = is_alive(pid, name_hint=service.process_hint)
            healthy = alive and self._check(service, port)
            states.append(ServiceState(service.name, port, pid, alive, healthy))
        return states

    def down(self) -> list[str]:
        """Stop every recorded service that is still ours; returns their names."""
        record = self._read()
        stopped = []
        for service in reversed(self.services):
            entry = record["services"].pop(service.name, None)
            if not entry:
                continue
            pid = entry.get("pid")
            if is_alive(pid, name_hint=service.process_hint):
                service.stop(pid=int(pid), stack_dir=self.stack_dir)
                stopped.append(service.name)
        record["urls"] = {}
        if self.record_path.exists():
            self._write(record)
        return stopped
