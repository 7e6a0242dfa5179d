"""The wire contract of infq: what travels on Kafka, as pydantic models.

``jobs.JobRequest`` is what producers put on ``infq.jobs``; ``events.CompletionEvent`` is
what infq publishes on ``infq.results``; ``events.DeadLetter`` is what lands on
``infq.jobs.dlq``. The JSON Schema files under ``schemas/json/`` are exported from these
models (``python -m schemas.export``) and a test keeps them in sync.
"""

from schemas.batches import BatchCompletedEvent, BatchSeal
from schemas.events import CompletionEvent, DeadLetter, JobError, RecordSource, ResultRef
from schemas.jobs import SCHEMA_VERSION, JobRequest, TextInput, decode_job_request
from schemas.status import FINAL_STATUSES, JobStatus, Topics

__all__ = [
    "FINAL_STATUSES",
    "SCHEMA_VERSION",
    "BatchCompletedEvent",
    "BatchSeal",
    "CompletionEvent",
    "DeadLetter",
    "JobError",
    "JobRequest",
    "JobStatus",
    "RecordSource",
    "ResultRef",
    "TextInput",
    "Topics",
    "decode_job_request",
]
