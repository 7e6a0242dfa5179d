"""The production check's pure core: which secrets are published defaults, which brokers
are remote, and that a reason never carries the secret it refuses."""

from __future__ import annotations

import pytest

from infq.settings.production import Secrets, refusals

GOOD_DB = "postgresql+psycopg://infq:Zq8-from-vault@db.internal:5432/infq"
GOOD_BROKER = "redis://:Zq8-from-vault@redis.internal:6379/0"


def _secrets(**changes: str | None) -> Secrets:
    given: dict[str, str | None] = {
        "database_url": GOOD_DB,
        "broker_url": GOOD_BROKER,
        "s3_secret_access_key": "wJalrXUtnFEMI-from-vault",
        "flower_password": "Zq8-from-vault",
    }
    given.update(changes)
    return Secrets(**given)


def test_generated_secrets_pass() -> None:
    assert refusals(_secrets()) == []


@pytest.mark.parametrize(
    "broker",
    [
        "redis://localhost:6379/0",
        "redis://127.0.0.1:6379/0",
        "redis://127.0.0.2:6379/0",
        "redis://[::1]:6379/0",
        "unix:///run/redis.sock",
    ],
)
def test_a_broker_on_this_host_needs_no_password(broker: str) -> None:
    assert refusals(_secrets(broker_url=broker)) == []


@pytest.mark.parametrize(
    "broker", ["redis://redis:6379/0", "rediss://10.0.0.5:6380/0", "redis://user@redis/0"]
)
def test_a_remote_broker_without_a_password_is_refused(broker: str) -> None:
    assert refusals(_secrets(broker_url=broker)) == [
        "INFQ_BROKER_URL names a remote Redis without a password"
    ]


def test_a_database_without_a_password_is_left_to_postgres() -> None:
    # Certificates, .pgpass and IAM tokens authenticate without a password in the URL.
    assert refusals(_secrets(database_url="postgresql+psycopg://infq@db/infq")) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"database_url": "postgresql+psycopg://infq:infq@postgres:5432/infq"},
         "INFQ_DATABASE_URL carries a published default password"),
        ({"database_url": "postgresql://postgres:Postgres@db/infq"},
         "INFQ_DATABASE_URL carries a published default password"),
        ({"broker_url": "redis://:CHANGE-ME@redis.infq.svc:6379/0"},
         "INFQ_BROKER_URL carries a published default password"),
        ({"s3_secret_access_key": "minioadmin"},
         "INFQ_S3_SECRET_ACCESS_KEY is a published default"),
        ({"flower_password": " change-me "}, "INFQ_FLOWER_PASSWORD is a published default"),
    ],
)  # fmt: skip
def test_a_published_default_is_refused_by_name(changes: dict[str, str], reason: str) -> None:
    (got,) = refusals(_secrets(**changes))
    assert got == reason
    secret = next(iter(changes.values()))
    assert "infq:infq" not in got
    assert "CHANGE-ME" not in got
    assert secret.strip() not in got


def test_every_refusal_is_named_at_once() -> None:
    got = refusals(
        _secrets(
            database_url="postgresql+psycopg://infq:infq@postgres/infq",
            broker_url="redis://redis:6379/0",
            s3_secret_access_key="infq-secret-key",
            flower_password="change-me",
        )
    )
    assert len(got) == 4


def test_unset_secrets_are_not_this_checks_business() -> None:
    # Missing URLs are refused by the service check, a missing Flower password by Flower.
    none = Secrets(database_url=None, broker_url=None, s3_secret_access_key=None,
                   flower_password=None)  # fmt: skip
    assert refusals(none) == []


def test_a_url_that_does_not_parse_is_left_to_the_engine() -> None:
    assert refusals(_secrets(database_url="not a url")) == []


def test_a_percent_encoded_default_is_still_the_default() -> None:
    got = refusals(_secrets(database_url="postgresql+psycopg://infq:%63hange-me@db/infq"))
    assert got == ["INFQ_DATABASE_URL carries a published default password"]
