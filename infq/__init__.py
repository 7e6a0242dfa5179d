"""infq: an event-driven asynchronous inference job queue.

Jobs arrive on Kafka, a dispatcher records them in Postgres and hands them to a Celery
queue per model, micro-batching GPU workers compute them, and results land in Postgres
(rows) and S3 (payloads) with a completion event on Kafka.
"""

__version__ = "0.1.0"
