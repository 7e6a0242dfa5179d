"""infq workers: the Celery side that micro-batches jobs and runs models on them.

Importing this package never loads torch or connects anywhere: the catalogue
(:mod:`infq.catalogue`) is plain metadata, and a worker loads the models of the lanes
it serves in ``worker_process_init`` (see :mod:`workers.loading`).
"""
