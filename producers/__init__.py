"""The Python producer SDK: submit jobs to ``infq.jobs`` and get their ids back."""

from producers.sdk import JobProducer, new_batch_id

__all__ = ["JobProducer", "new_batch_id"]
