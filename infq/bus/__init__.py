"""How infq's processes talk: Kafka clients, topics and the confirming publisher
(:mod:`.kafka`), the Celery app with every queue and task name (:mod:`.celery`), and the
job message the scheduler sends a worker (:mod:`.messages`). Senders and consumers
both build on this, so nothing outside ``workers/`` imports ``workers``."""
