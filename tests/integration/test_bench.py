"""``infq bench --smoke`` on the real stack: every phase runs, the report is written and
its ratios come from the run's own phases (the full benchmark is ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks.run import Sizes, run
from infq.settings import Settings

pytestmark = pytest.mark.integration


def test_the_benchmark_smoke_writes_a_consistent_report(settings: Settings, tmp_path: Path) -> None:
    paths = run(settings, sizes=Sizes.smoke(), out=tmp_path, console=Console(quiet=True))
    report = json.loads(paths["json"].read_text())
    phases = report["phases"]
    assert list(phases) == ["a", "b", "b2", "c", "d", "e", "f"]
    assert all(p["jobs"] > 0 and p["jobs_per_s"] > 0 for p in phases.values())
    assert phases["b"]["batch_sizes"]  # the worker's real batch sizes
    assert set(phases["f"]["latency_s"]) == {"p50", "p95", "p99"}
    assert len(phases["f"]["cdf_s"]) == 101
    ratios = {t["name"]: t["value"] for t in report["targets"]}
    burst = phases["b"]["jobs"] / phases["b"]["wall_s"]
    raw = phases["a"]["jobs"] / phases["a"]["wall_s"]
    # the report rounds ratios to 3 decimals: within half a unit of the last one
    assert ratios["(b)/(a) burst"] == pytest.approx(burst / raw, abs=6e-4)
    assert "(b)/(d) vs naive Celery" in ratios
    assert paths["png"].stat().st_size > 10_000
    assert "| (a) raw model loop |" in paths["md"].read_text()
    # (g): every job succeeded, and retention deleted jobs while the run went on
    growth = report["growth"]
    assert growth["submitted"] > 0
    assert growth["failed"] == 0
    assert growth["deleted"] > 0, growth
    assert "(g) jobs table growth after the first third" in ratios
