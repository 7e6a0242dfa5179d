"""What the ``infq`` command does with an error it expected: one line, one exit status.

Each kind of error has its own status, so a script can tell "start the stack" from
"fix the file" without parsing text (docs/operations.md, "Exit codes", lists them).
Anything not recognised here is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pydantic import ValidationError

from infq.catalogue.routing import BadRoute
from infq.errors import (
    ConfigurationError,
    InfqError,
    InvalidInput,
    NotFound,
    OverLimit,
    RejectedRecord,
    StackError,
    UnknownModel,
)
from infq.outages import SERVICE_SETTINGS, outage_of
from infq.settings import ENV_PREFIX, explain_invalid
from infq.webhooks.urls import RefusedCallbackUrl


class ExitCode(IntEnum):
    """The exit statuses of ``infq``."""

    OK = 0
    # A command's own refusal or verdict (``infq status``: unhealthy), or any other
    # expected infq error.
    FAILED = 1
    # A setting is missing, unknown or invalid. Click's usage errors exit 2 as well.
    CONFIGURATION = 2
    # Postgres, Kafka, Redis or S3 did not answer, or the local stack could not start.
    UNAVAILABLE = 3
    # What was given is not acceptable: an unknown model, a bad JSONL line, a bad route.
    INVALID_INPUT = 4
    # A named job, batch, delivery or tenant does not exist.
    NOT_FOUND = 5
    # A tenant limit refused the submission (its max queued jobs): retry later.
    LIMITED = 6


# First match wins: subclasses before the classes they derive from.
_KINDS: tuple[tuple[type[InfqError], ExitCode], ...] = (
    (ConfigurationError, ExitCode.CONFIGURATION),
    (StackError, ExitCode.UNAVAILABLE),
    (UnknownModel, ExitCode.INVALID_INPUT),
    (InvalidInput, ExitCode.INVALID_INPUT),
    (RejectedRecord, ExitCode.INVALID_INPUT),
    (BadRoute, ExitCode.INVALID_INPUT),
    (RefusedCallbackUrl, ExitCode.INVALID_INPUT),
    (NotFound, ExitCode.NOT_FOUND),
    (OverLimit, ExitCode.LIMITED),
)


@dataclass(frozen=True)
class Failure:
    """An expected error as the command reports it."""

    code: ExitCode
    message: str


def explain(error: BaseException) -> Failure | None:
    """The line and status for an expected error; None for a bug (show its traceback)."""
    if isinstance(error, ValidationError):
        line = explain_invalid(error)
        return None if line is None else Failure(ExitCode.CONFIGURATION, line)
    outage = outage_of(error)
    if outage is not None:
        return Failure(ExitCode.UNAVAILABLE, f"{outage}; {start_hint(outage.services)}")
    for kind, code in _KINDS:
        if isinstance(error, kind):
            return Failure(code, str(error))
    if isinstance(error, InfqError):
        return Failure(ExitCode.FAILED, str(error))
    return None


def start_hint(services: list[str]) -> str:
    """How to bring ``services`` back: the local stack, or the settings that point at them."""
    names = ", ".join(ENV_PREFIX + SERVICE_SETTINGS[s].upper() for s in services)
    return f"`infq stack up` starts the local stack (or check {names})"
