"""Telling a service outage apart from a bug.

Each client library reports an unreachable service its own way: psycopg's
``OperationalError`` (under SQLAlchemy's), kafka-python's ``KafkaTimeoutError``,
redis-py's ``ConnectionError`` (under kombu's), botocore's ``EndpointConnectionError``.
Entry points ask :func:`outage_of` which service an exception says is down, so a person
reads "postgres is not reachable" instead of a traceback and the REST API answers 503;
:func:`require_reachable` checks before a slow client would find out by timing out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import botocore.exceptions
import kombu.exceptions
import psycopg
import redis.exceptions
from kafka import errors as kafka_errors

from infq.errors import PublishFailed, ServiceUnavailable

if TYPE_CHECKING:
    from infq.settings import Settings

# The setting that points at each service, and the port its URL implies when it has none.
SERVICE_SETTINGS = {
    "postgres": "database_url",
    "kafka": "kafka_bootstrap",
    "redis": "broker_url",
    "s3": "s3_endpoint_url",
}
DEFAULT_PORTS = {"postgres": 5432, "kafka": 9092, "redis": 6379, "s3": 443}
TCP_TIMEOUT_S = 2.0
# psycopg errors of these SQLSTATE classes are about the connection, not the statement:
# 08 connection exception, 57P admin shutdown / cannot connect now. None: no server answer.
_CONNECTION_SQLSTATES = ("08", "57P")
_KAFKA_DOWN = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.MetadataEmptyBrokerList,
    kafka_errors.NodeNotReadyError,
)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def outage_of(error: BaseException) -> ServiceUnavailable | None:
    """The outage ``error`` (or an exception it was raised from) reports, if any."""
    for e in _chain(error):
        if isinstance(e, ServiceUnavailable):
            return e
        service = _service_of(e)
        if service is not None:
            return ServiceUnavailable([service], reason=_first_line(e))
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    # Only explicit causes (``raise ... from e``): a bug raised while handling an outage
    # has the outage as its __context__, and must still show as the bug it is.
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _service_of(e: BaseException) -> str | None:
    if isinstance(e, psycopg.OperationalError):
        state = e.sqlstate
        return "postgres" if state is None or state.startswith(_CONNECTION_SQLSTATES) else None
    if isinstance(e, (*_KAFKA_DOWN, PublishFailed)):
        return "kafka"
    # infq's only Celery broker is Redis: kombu's connection errors are Redis being away.
    if isinstance(e, (*_REDIS_DOWN, kombu.exceptions.OperationalError)):
        return "redis"
    if isinstance(e, botocore.exceptions.ConnectionError):
        return "s3"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def address(url: str, *, service: str) -> tuple[str, int]:
    """Host and port a service URL points at (the first of a Kafka bootstrap list)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url.split(',')[0]}")
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[service]


def tcp_problem(url: str, *, service: str) -> str | None:
    """None if something accepts a TCP connection where the URL points, else why not
    (``127.0.0.1:5432: Connection refused``)."""
    host, port = address(url, service=service)
    try:
        with socket.create_connection((host, port), timeout=TCP_TIMEOUT_S):
            return None
    except OSError as e:
        return f"{host}:{port}: {e.strerror or e}"


def require_reachable(settings: Settings, *services: str) -> None:
    """Raise :class:`ServiceUnavailable` naming every one of ``services`` that refuses a
    TCP connection; a fast answer where a client library would retry for half a minute.
    A service URL that is not set raises ConfigurationError (``settings.require``); S3
    without an endpoint URL is AWS, not checked."""
    down: dict[str, str] = {}
    for service in services:
        name = SERVICE_SETTINGS[service]
        if service == "s3" and getattr(settings, name) is None:
            continue
        problem = tcp_problem(settings.require(name), service=service)
        if problem is not None:
            down[service] = problem
    if down:
        if len(down) == 1:
            reason = next(iter(down.values()))
        else:
            reason = "; ".join(f"{service} at {problem}" for service, problem in down.items())
        raise ServiceUnavailable(list(down), reason=reason)
