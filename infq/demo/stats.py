"""Pure summary statistics for a finished run (demo, benchmarks)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def batch_histogram(job_batch_sizes: Sequence[int]) -> dict[int, int]:
    """Model batches per batch size, from each job's batch size.

    A batch of size s contributes s jobs with batch size s, so the count of batches of
    size s is exactly (jobs with size s) / s.
    """
    jobs_per_size = Counter(job_batch_sizes)
    return {size: jobs_per_size[size] // size for size in sorted(jobs_per_size) if size > 0}
