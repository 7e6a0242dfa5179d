"""What ``INFQ_ENVIRONMENT=production`` refuses besides missing URLs: secrets everyone knows.

A deployment copied from the compose file, the Kubernetes example Secret or a tutorial
starts with passwords that are printed in public files (``infq``, ``change-me``,
MinIO's ``minioadmin``). Each of them passed "a password is set", so the check here is
whether it is one of those. A Redis broker without a password is refused too unless it
is on this host: Celery's broker can run tasks, so anyone who reaches it controls the
workers. Postgres is not held to that (it may authenticate by certificate, a
``.pgpass`` file or IAM), only to not using a known password.

Pure: it parses URLs and compares strings, so its unit tests need nothing running.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# Passwords published in infq's own files (docker-compose.yml's former defaults, the
# k8s example Secret's placeholder) and the usual defaults of the services it uses.
# Compared case-insensitively.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "infq",
        "infq-secret-key",
        "change-me",
        "changeme",
        "minioadmin",
        "admin",
        "password",
        "postgres",
        "secret",
        "redis",
    }
)
# Broker hosts a password is not demanded of: the machine itself.
_LOCAL_HOSTS = frozenset({"localhost", ""})


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secrets a production process was given (None: not set)."""

    database_url: str | None
    broker_url: str | None
    s3_secret_access_key: str | None
    flower_password: str | None


def refusals(secrets: Secrets) -> list[str]:
    """One reason per refused secret, naming its variable but never its value."""
    reasons = []
    if _is_known(_password(secrets.database_url)):
        reasons.append("INFQ_DATABASE_URL carries a published default password")
    broker_password = _password(secrets.broker_url)
    if _is_known(broker_password):
        reasons.append("INFQ_BROKER_URL carries a published default password")
    elif secrets.broker_url and not broker_password and not _is_local(secrets.broker_url):
        reasons.append("INFQ_BROKER_URL names a remote Redis without a password")
    if _is_known(secrets.s3_secret_access_key):
        reasons.append("INFQ_S3_SECRET_ACCESS_KEY is a published default")
    if _is_known(secrets.flower_password):
        reasons.append("INFQ_FLOWER_PASSWORD is a published default")
    return reasons


def _is_known(secret: str | None) -> bool:
    return secret is not None and secret.strip().lower() in KNOWN_DEFAULT_SECRETS


def _password(url: str | None) -> str | None:
    """The password of a service URL, percent-decoded (None: none, or not a URL, which
    the service's client refuses with its own words)."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _is_local(url: str) -> bool:
    """A unix socket or a loopback host."""
    parts = urlsplit(url)
    if parts.scheme in ("unix", "redis+socket"):
        return True
    host = (parts.hostname or "").lower()
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
