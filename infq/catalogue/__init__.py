"""The model catalogue and the job-message contract: torch-free, below both the
dispatcher and the workers."""
