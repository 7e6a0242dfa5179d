"""Shifts this process's wall clock when it starts (``time.time``, ``datetime.now``;
not the monotonic clock), by ``CHAOS_CLOCK_SHIFT_S`` seconds, ticking on from there: a
host whose clock is off. Python imports it at start-up in a process that has this
directory first on ``PYTHONPATH``; forked children (a Celery pool) inherit the shift."""

import os

_SHIFT_S = float(os.environ.get("CHAOS_CLOCK_SHIFT_S", "0") or 0)
if _SHIFT_S:
    import datetime

    import time_machine

    _now = datetime.datetime.now(datetime.UTC)
    time_machine.travel(_now + datetime.timedelta(seconds=_SHIFT_S), tick=True).start()
