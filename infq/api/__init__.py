"""The REST gateway (FastAPI): submit, inspect and cancel jobs and batches."""
