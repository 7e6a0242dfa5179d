"""The Python SDK: submit jobs to ``infq.jobs`` over Kafka (:class:`JobProducer`, for
trusted producers and millions of jobs), or use the REST API (:class:`InfqClient`)."""

from producers.client import ApiError, InfqClient
from producers.sdk import JobProducer, new_batch_id

__all__ = ["ApiError", "InfqClient", "JobProducer", "new_batch_id"]
