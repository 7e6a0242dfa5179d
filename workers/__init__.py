"""infq workers: the Celery side that micro-batches jobs and runs models on them.

Importing this package never loads torch or connects anywhere: the registry is plain
metadata and models are loaded in ``worker_process_init`` (see :mod:`workers.app`).
"""
