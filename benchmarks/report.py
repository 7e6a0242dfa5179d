"""The benchmark report: ratios and targets from one run's phases, as JSON, a markdown
table and a PNG chart (throughput bars, latency CDF at half load)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.growth import Growth
from benchmarks.phases import Phase, batch_size_text

# Target units whose goal is an upper bound: seconds (p99) and a growth factor.
UPPER_BOUNDS = ("s", "x")
# (g): the jobs table may grow this much after retention has caught up (noise of
# autovacuum's timing, and the rate of the run's last seconds).
GROWTH_GOAL = 1.25


@dataclass(frozen=True)
class Target:
    """One target of the performance issue, and whether this run met it."""

    name: str
    value: float
    goal: float
    unit: str

    @property
    def met(self) -> bool:
        """Whether the value reaches the goal (p99 targets are upper bounds)."""
        return self.value <= self.goal if self.unit in UPPER_BOUNDS else self.value >= self.goal


def targets(
    phases: dict[str, Phase], *, max_wait_s: float, batch_size: int, growth: Growth | None = None
) -> list[Target]:
    """The issue's targets, computed from this run only."""
    a, b = phases["a"].jobs_per_s, phases["b"].jobs_per_s
    out = [
        Target("(b)/(a) burst", b / a, 0.9, "ratio"),
        Target("(c) echo end to end", phases["c"].jobs_per_s, 5000, "jobs/s"),
        Target("(e) cache hits", phases["e"].jobs_per_s, 10000, "jobs/s"),
    ]
    if "b2" in phases:
        out.insert(1, Target("(b)/(a) sustained", phases["b2"].jobs_per_s / a, 0.85, "ratio"))
    if "d" in phases:
        out.append(Target("(b)/(d) vs naive Celery", b / phases["d"].jobs_per_s, 4, "ratio"))
    if "f" in phases:
        one_batch_s = batch_size / a
        goal = max_wait_s + 2 * one_batch_s
        out.append(Target("(f) p99 at half load", phases["f"].latency_s["p99"], goal, "s"))
    if growth is not None:
        out.append(Target("(g) jobs table growth after the first third", growth.growth,
                          GROWTH_GOAL, "x"))  # fmt: skip
    return out


def machine() -> str:
    """What the run ran on."""
    import os

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def write(
    out: Path,
    phases: dict[str, Phase],
    goals: list[Target],
    *,
    config: dict[str, Any],
    growth: Growth | None = None,
) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``bench.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = {
        "when": stamp,
        "machine": machine(),
        "config": config,
        "phases": {k: p.as_dict() for k, p in phases.items()},
        "targets": [{**t.__dict__, "value": round(t.value, 3), "met": t.met} for t in goals],
        "growth": growth.as_dict() if growth is not None else None,
    }
    paths = {"json": out / "bench.json", "md": out / "bench.md", "png": out / "bench.png"}
    paths["json"].write_text(json.dumps(doc, indent=2) + "\n")
    table = markdown(phases, goals, stamp=stamp, config=config)
    paths["md"].write_text(table + ("\n" + growth.markdown() if growth is not None else ""))
    chart(phases, paths["png"])
    return paths


def markdown(
    phases: dict[str, Phase], goals: list[Target], *, stamp: str, config: dict[str, Any]
) -> str:
    """The benchmark table of the README and docs/benchmarks.md."""
    a = phases["a"].jobs_per_s
    lines = [
        f"Run {stamp} on {machine()}; {config.get('device', 'cpu')}, batches of "
        f"{config.get('max_batch_size')}, max wait {config.get('max_wait_ms')} ms.",
        "",
        "| phase | jobs | jobs/s | vs (a) | latency p50 / p95 / p99 (s) "
        "| batch sizes (size x jobs) |",
        "|---|---|---|---|---|---|",
    ]
    for p in phases.values():
        lat = p.latency_s
        latency = f"{lat['p50']} / {lat['p95']} / {lat['p99']}" if lat else "-"
        sizes = batch_size_text(p.batch_sizes) if p.batch_sizes else "-"
        lines.append(f"| ({p.key}) {p.name} | {p.jobs:,} | {p.jobs_per_s:,.0f} | "
                     f"{p.jobs_per_s / a:.2f} | {latency} | {sizes} |")  # fmt: skip
    lines += ["", "| target | this run | goal | met |", "|---|---|---|---|"]
    for t in goals:
        value = f"{t.value:,.0f}" if t.unit == "jobs/s" else f"{t.value:.2f}"
        amount = f"{t.goal:,.0f} {t.unit}" if t.unit == "jobs/s" else f"{t.goal:.2f}"
        bound = "≤" if t.unit in UPPER_BOUNDS else "≥"
        goal = f"{bound} {amount}{' s' if t.unit == 's' else ''}"
        lines.append(f"| {t.name} | {value} | {goal} | {'yes' if t.met else 'no'} |")
    lines += [
        "",
        "Inputs: " + "; ".join(f"({p.key}) {p.inputs}" for p in phases.values() if p.inputs),
    ]
    return "\n".join(lines) + "\n"


def chart(phases: dict[str, Phase], path: Path) -> None:
    """Throughput bars (log scale) and, when measured, the half-load latency CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (bars, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    names = [f"({p.key}) {p.name}" for p in phases.values()]
    bars.barh(names, [p.jobs_per_s for p in phases.values()], color="#4c72b0")
    bars.set_xscale("log")
    bars.set_xlabel("jobs/s (log)")
    bars.invert_yaxis()
    bars.set_title("throughput, one run")
    half = phases.get("f")
    if half is not None and half.cdf_s:
        cdf.plot(half.cdf_s, [q / 100 for q in range(len(half.cdf_s))])
        cdf.set_xlabel("latency (s), Kafka timestamp → final")
        cdf.set_ylabel("fraction of jobs")
        cdf.set_title(f"latency at half load ({half.jobs_per_s:.0f} jobs/s)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
