"""The Celery names and the app factory the senders and the workers share: a queue per
model lane, the notifier's own queues, and an app that connects nowhere when built."""

from __future__ import annotations

from collections.abc import Callable

from infq.bus.celery import (
    CONTROL_QUEUE,
    DELIVER_TASK,
    FINALIZE_TASK,
    RUN_JOBS_TASK,
    WEBHOOK_QUEUE,
    create_app,
    model_queue,
)
from infq.settings import Settings


def test_a_model_queue_is_named_after_its_lane() -> None:
    assert model_queue("echo") == "infq.model.echo"
    assert model_queue("all-MiniLM-L6-v2@c9745ed") == "infq.model.all-MiniLM-L6-v2@c9745ed"


def test_every_celery_name_is_distinct_and_in_infqs_namespace() -> None:
    names = [RUN_JOBS_TASK, DELIVER_TASK, FINALIZE_TASK, WEBHOOK_QUEUE, CONTROL_QUEUE]
    assert len(set(names)) == len(names)
    assert all(name.startswith("infq.") for name in names)
    assert model_queue("x") not in names


def test_the_app_declares_one_queue_per_model_and_speaks_json_only(
    make_offline_settings: Callable[..., Settings],
) -> None:
    settings = make_offline_settings(visibility_timeout_s=77)
    app = create_app(settings, models=["echo", "all-MiniLM-L6-v2"])
    queues = [q.name for q in app.conf.task_queues]
    assert queues == ["infq.model.echo", "infq.model.all-MiniLM-L6-v2"]
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.broker_url == settings.broker
    assert app.conf.broker_transport_options["visibility_timeout"] == 77
    assert app.conf.worker_prefetch_multiplier == 1


def test_a_sender_app_declares_no_model_queue(
    make_offline_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_offline_settings())
    assert list(app.conf.task_queues) == []
