"""Which revision a new job runs on: a weighted route, chosen from the job id. Pure.

The choice is a hash of the job id, so a job resubmitted with the same id (an
at-least-once producer retrying) lands on the same revision, and a 90/10 route sends
about 10 % of any large set of jobs to the canary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from infq.errors import InfqError


class BadRoute(InfqError):
    """A route that cannot be used (unknown revision, negative or all-zero shares)."""


def check_route(route: Mapping[str, int], revisions: list[str]) -> dict[str, int]:
    """``route`` as stored (in catalogue order, zero shares dropped), or :class:`BadRoute`."""
    unknown = sorted(set(route) - set(revisions))
    if unknown:
        raise BadRoute(f"unknown revisions {unknown}; revisions: {revisions}")
    if any(int(w) < 0 for w in route.values()):
        raise BadRoute("shares must be >= 0")
    kept = {r: int(route[r]) for r in revisions if route.get(r)}
    if not kept:
        raise BadRoute("at least one revision needs a share above 0")
    return kept


def parse_route(words: list[str]) -> dict[str, int]:
    """``["v1=90", "v2=10"]`` (or a bare ``v2``: all of it) as a route."""
    if len(words) == 1 and "=" not in words[0]:
        return {words[0]: 100}
    route: dict[str, int] = {}
    for word in words:
        name, sep, share = word.partition("=")
        if not sep or not name or not share.strip().isdigit():
            raise BadRoute(f"{word!r}: write REVISION=SHARE, e.g. v1=90 v2=10")
        route[name] = int(share)
    return route


def bucket(job_id: str, *, model: str) -> float:
    """A uniform number in [0, 1) fixed by the job id (and the model)."""
    digest = hashlib.sha256(f"{model}\x00{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(route: Mapping[str, int], *, job_id: str, model: str) -> str:
    """The revision ``route`` gives the job: revision i gets the share w_i / sum(w)."""
    total = sum(route.values())
    if total <= 0:
        raise BadRoute("a route needs a share above 0")
    point = bucket(job_id, model=model) * total
    running = 0
    last = ""
    for revision, share in route.items():
        if share <= 0:
            continue
        running += share
        last = revision
        if point < running:
            return revision
    return last
