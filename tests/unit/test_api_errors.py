"""The REST API's error shape, offline docs, OpenAPI contract and /healthz, in process.

Services are pointed at ports nothing listens on, so the app starts (nothing connects
at startup) and every service is down: what the API says then is the point. The same
behaviours on the real stack are in ``tests/integration/test_api.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infq.api.app import create_api
from infq.api.errors import describe_validation
from infq.ops.probes import ServiceProbes
from infq.settings import Settings

ERROR_KEYS = {"detail", "code"}


@pytest.fixture
def settings(offline_settings: Settings) -> Settings:
    """Settings whose four services listen nowhere (``conftest.py``)."""
    return offline_settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API with its lifespan run; server errors answered, not re-raised."""
    with TestClient(create_api(settings), raise_server_exceptions=False) as c:
        yield c


def test_validation_errors_read_as_a_sentence_naming_the_field() -> None:
    detail, fields = describe_validation(
        [
            {"type": "extra_forbidden", "loc": ("body", "modle"), "msg": "Extra inputs"},
            {"type": "missing", "loc": ("body", "input"), "msg": "Field required"},
        ]
    )
    assert detail == "body.modle: unknown field (and 1 more)"
    assert [(f.loc, f.message) for f in fields] == [
        ("body.modle", "unknown field"),
        ("body.input", "field required"),
    ]
    detail, _ = describe_validation(
        [{"type": "json_invalid", "loc": ("body", 7), "msg": "JSON decode error",
          "ctx": {"error": "Expecting value"}}]
    )  # fmt: skip
    assert detail == "body: not valid JSON (Expecting value)"
    detail, _ = describe_validation(
        [{"type": "dict_type", "loc": ("body",), "msg": "Input should be a valid dictionary"}]
    )
    assert detail.endswith("send a JSON object with Content-Type: application/json")


def _external_hosts(html: str) -> list[str]:
    return re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_nothing_from_another_host(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assert _external_hosts(html.text) == []
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_openapi_declares_the_api_keys_and_every_error(client: TestClient) -> None:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            errors = {s for s in op["responses"] if s >= "400"}
            assert errors, f"{method} {path} documents no error"
            for status in errors:
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                ref = schema["$ref"].rsplit("/", 1)[-1]
                # The OpenAI-compatible surface answers in OpenAI's shape.
                keys = {"error"} if path.startswith("/openai/") else ERROR_KEYS
                assert set(spec["components"]["schemas"][ref]["properties"]) >= keys
            if path.startswith("/v1/"):
                assert op["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
                assert {"401", "422", "500", "503"} <= errors, f"{method} {path}"
                if "{" in path:
                    assert "404" in errors, f"{method} {path}"
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_error_has_the_one_shape(client: TestClient) -> None:
    answers = {
        "no route": client.get("/v2/nothing"),
        "wrong method": client.delete("/healthz"),
        "no key": client.get("/v1/jobs/0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11"),
        "postgres down": client.get(
            "/v1/jobs/0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11",
            headers={"Authorization": "Bearer iq_some-key"},
        ),
    }
    for what, answer in answers.items():
        assert set(answer.json()) == ERROR_KEYS, what
    assert [(a.status_code, a.json()["code"]) for a in answers.values()] == [
        (404, "not_found"),
        (405, "method_not_allowed"),
        (401, "unauthorized"),
        (503, "unavailable"),
    ]
    assert answers["no key"].headers["WWW-Authenticate"] == "Bearer"
    # Which service, never where it lives.
    assert answers["postgres down"].json()["detail"] == "postgres unavailable; retry later"


def test_healthz_names_every_service_that_is_down(client: TestClient, settings: Settings) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["code"] == "unavailable"
    assert body["detail"] == "postgres, kafka, redis and s3 are not reachable"
    # Which services, not why: error text names hosts and ports, and anyone may ask.
    assert body["checks"] == dict.fromkeys(("postgres", "kafka", "redis", "s3"), "down")
    assert "127.0.0.1" not in answer.text
    assert settings.kafka not in answer.text


def test_healthz_shows_the_reasons_to_an_operator_who_asks(settings: Settings) -> None:
    detailed = settings.model_copy(update={"api_health_detail": True})
    with TestClient(create_api(detailed), raise_server_exceptions=False) as client:
        body = client.get("/healthz").json()
    assert set(body["checks"]) == {"postgres", "kafka", "redis", "s3"}
    assert all(state.startswith("error: ") for state in body["checks"].values())


def test_probes_answer_within_their_deadline(settings: Settings) -> None:
    from infq.db.session import make_engine

    engine = make_engine(settings.database)
    probes = ServiceProbes(settings, engine=engine, timeout_s=1.0)
    try:
        import time

        started = time.monotonic()
        checks = probes.check_all()
        assert time.monotonic() - started < 3.0
    finally:
        probes.close()
        engine.dispose()
    assert checks["redis"].startswith("error: ConnectionError")
    assert checks["s3"].startswith("error: EndpointConnectionError")
    assert checks["postgres"].startswith("error: OperationalError")
    assert checks["kafka"].startswith("error: ")
