"""One error tree for infq.

Every error infq raises on purpose derives from :class:`InfqError`, so callers can catch
one type. Errors carry their data as attributes (not only in the message) so that
handlers and logs can use them without parsing text.
"""

from __future__ import annotations


class InfqError(Exception):
    """Root of every error infq raises on purpose."""


class ConfigurationError(InfqError):
    """Settings are missing or unsafe; the message says which and how to fix it."""


class StackError(InfqError):
    """A local-stack service could not be started, checked or stopped."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class RejectedRecord(InfqError):
    """A Kafka record is not an acceptable job request.

    ``code`` is a stable machine-readable reason (``invalid_json``, ``invalid_record``,
    ``unknown_model``, ``unsupported_task``, ``input_too_large``, ``record_too_large``);
    ``job_id`` is set when one could be recovered from the record, so the rejection can
    be recorded against that job. ``field`` is the request field at fault (``model``,
    ``params.top_k``), when one is; ``message`` then starts with it (``model: unknown
    model 'gpt4'; …``), so a refusal names the field alike on Kafka and at the edges,
    which prefix the request's place (``jobs[0].model: …``).
    """

    def __init__(
        self, code: str, message: str, *, job_id: str | None = None, field: str | None = None
    ) -> None:
        located = f"{field}: {message}" if field else message
        super().__init__(f"{code}: {located}")
        self.code = code
        self.message = located
        self.job_id = job_id
        self.field = field


class UnknownModel(InfqError):
    """A model name is not in the registry."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; known: {', '.join(known)}")
        self.name = name
        self.known = known


class PermanentFailure(InfqError):
    """A job failed in a way that retrying cannot fix (bad input for the model, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PublishFailed(InfqError):
    """Kafka did not acknowledge some records; nothing was dropped silently.

    ``unconfirmed`` names them when the caller knows names (the SDK: job ids), so
    exactly those can be sent again (job ids are idempotency keys).
    """

    def __init__(self, *, failed: int, total: int, unconfirmed: list[str] | None = None) -> None:
        super().__init__(f"Kafka did not acknowledge {failed} of {total} records")
        self.failed = failed
        self.total = total
        self.unconfirmed = unconfirmed or []


class UnknownSetting(ConfigurationError):
    """``INFQ_*`` environment variables that name no setting (a typo would be ignored).

    ``names`` are the variables as written; ``suggestions`` maps each to the closest
    real variable, when one is close enough to be meant.
    """

    def __init__(self, names: list[str], suggestions: dict[str, str]) -> None:
        parts = []
        for name in names:
            close = suggestions.get(name)
            parts.append(f"{name}; did you mean {close}?" if close else name)
        label = "unknown setting" if len(names) == 1 else "unknown settings"
        unmatched = len(suggestions) < len(names)
        hint = " (see docs/configuration.md)" if unmatched else ""
        super().__init__(f"{label} {', '.join(parts)}{hint}")
        self.names = names
        self.suggestions = suggestions


class ServiceUnavailable(InfqError):
    """A service infq depends on (``postgres``, ``kafka``, ``redis``, ``s3``) did not answer.

    ``services`` names them; ``reason`` is what the client library said. The message
    says what is down, not how to fix it: the CLI adds that hint, the REST API does not.
    """

    def __init__(self, services: list[str], *, reason: str = "") -> None:
        names = services[-1] if len(services) == 1 else (
            f"{', '.join(services[:-1])} and {services[-1]}")  # fmt: skip
        verb = "is" if len(services) == 1 else "are"
        super().__init__(f"{names} {verb} not reachable" + (f" ({reason})" if reason else ""))
        self.services = services
        self.reason = reason


class InvalidInput(InfqError):
    """What the caller gave (a file, an argument) is not acceptable; says where and why."""


class Conflict(InfqError):
    """What was asked clashes with the current state (cancelling a job that already
    runs or is final); the message says what the state is."""


class OverLimit(InfqError):
    """A tenant limit refuses a submission for now; nothing of it was sent.

    ``code`` is ``queue_full`` (the tenant's max queued jobs) or ``rate_limited`` (its
    submission rate); ``retry_after_s`` is when trying again makes sense (the REST API
    sends it as ``Retry-After``).
    """

    def __init__(self, code: str, message: str, *, tenant: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.tenant = tenant
        self.retry_after_s = retry_after_s


class NotFound(InfqError):
    """A named thing (a job, a batch, a delivery) does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} {key}")
        self.kind = kind
        self.key = key
