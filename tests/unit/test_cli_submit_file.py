"""``infq submit`` and ``infq precompute`` read their file a line at a time: every line
is checked before the first is sent, and memory does not grow with the file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from infq.cli.exits import ExitCode
from infq.cli.jobs import _File
from infq.errors import InvalidInput
from infq.settings import Settings
from producers import jsonl
from producers.jsonl import BadLine, HashedCustomIds, iter_requests


def _write(path: Path, lines: Iterable[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    return path


def test_a_repeated_custom_id_names_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "jobs.jsonl", [
        '{"custom_id": "a", "text": "x"}', "", '{"custom_id": "b", "text": "y"}',
        '{"custom_id": "\\u0061", "text": "z"}',
    ])  # fmt: skip
    requests = iter_requests(path.open(encoding="utf-8"), model="echo", batch_id="b",
                             custom_ids=HashedCustomIds(path))  # fmt: skip
    with pytest.raises(BadLine, match="line 4: custom_id 'a' repeats line 1"):
        list(requests)


def test_a_digest_collision_is_not_a_repeat(tmp_path: Path, monkeypatch: Any) -> None:
    """Two ids with one digest send the reader back to the file, which finds no repeat."""
    path = _write(tmp_path / "jobs.jsonl",
                  [f'{{"custom_id": "id-{n}", "text": "x"}}' for n in range(5)])  # fmt: skip

    class Same:
        def __init__(self, *_: Any, **__: Any) -> None: ...

        def digest(self) -> bytes:
            return b"\0" * 8  # every id collides

    monkeypatch.setattr(jsonl, "blake2b", Same)
    requests = iter_requests(path.open(encoding="utf-8"), model="echo", batch_id="b",
                             custom_ids=HashedCustomIds(path))  # fmt: skip
    assert [r.custom_id for _, r in requests] == [f"id-{n}" for n in range(5)]


class _Producer:
    """Takes requests as Kafka would (this is the CLI's own logic under test)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def stream_requests(self, requests: Iterable[Any], *, on_sent: Any) -> int:
        for request in requests:
            self.sent.append(request.input.text)
        on_sent(len(self.sent))
        return len(self.sent)


def test_a_file_is_checked_whole_then_sent_in_order(
    tmp_path: Path, offline_settings: Settings
) -> None:
    path = _write(tmp_path / "jobs.jsonl", [f'"line {n}"' for n in range(7)])
    source = _File(path, offline_settings, "echo", "b1")
    assert source.count() == 7
    producer = _Producer()
    source.send(producer, total=7, on_sent=lambda _: None)  # type: ignore[arg-type]
    assert producer.sent == [f"line {n}" for n in range(7)]


def test_a_file_that_changes_between_the_passes_is_not_sealed(
    tmp_path: Path, offline_settings: Settings
) -> None:
    path = _write(tmp_path / "jobs.jsonl", ['"a"', '"b"', '"c"'])
    source = _File(path, offline_settings, "echo", "b1")
    total = source.count()
    _write(path, ['"a"', '"b"'])  # e.g. a pipeline still writing it
    with pytest.raises(InvalidInput, match=r"changed while it was sent \(3 lines checked, 2"):
        source.send(_Producer(), total=total, on_sent=lambda _: None)  # type: ignore[arg-type]


def test_a_file_that_is_not_utf8_is_one_clear_error(
    tmp_path: Path, offline_settings: Settings
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b'"ok"\n"\xff\xfe"\n')
    with pytest.raises(InvalidInput, match="not UTF-8"):
        _File(path, offline_settings, "echo", "b1").count()


def _peak_rss_mib(path: Path, env: dict[str, str]) -> float:
    """Peak resident memory of `infq submit PATH` in its own process (which stops at
    the file's last, bad line: the whole file is read, nothing is sent)."""
    probe = (
        "import resource, sys\n"
        "from infq.cli import main\n"
        "sys.argv = ['infq', 'submit', sys.argv[1], '--model', 'echo']\n"
        "try:\n    main()\n"
        "finally:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    print(f'peak_kib={peak}', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(path)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == ExitCode.INVALID_INPUT, done.stderr
    assert "unknown fields ['txt']" in done.stderr, done.stderr
    peak = next(w for w in done.stderr.split() if w.startswith("peak_kib="))
    return int(peak.removeprefix("peak_kib=")) / 1024


def test_memory_does_not_grow_with_the_file(stack_down: dict[str, str], tmp_path: Path) -> None:
    """Measured before the fix: 4.6 KB per line held (456 MB for 100,000 lines). Read a
    line at a time, 200,000 lines cost what 10 lines do, within 40 MiB."""
    line = orjson.dumps({"text": "a sentence of about the usual length " * 2,
                         "metadata": {"source": "crawl", "n": 1}}).decode()  # fmt: skip
    bad = '{"txt": "the last line is bad, so nothing is sent"}'
    small = _write(tmp_path / "small.jsonl", [line] * 10 + [bad])
    large = _write(tmp_path / "large.jsonl", [
        line.replace('"n":1', f'"n":{n}').replace("{", f'{{"custom_id":"c{n}",', 1)
        for n in range(200_000)
    ] + [bad])  # fmt: skip
    assert large.stat().st_size > 25 * 1024 * 1024
    baseline = _peak_rss_mib(small, stack_down)
    grown = _peak_rss_mib(large, stack_down) - baseline
    assert grown < 40, f"{grown:.0f} MiB more for 200,000 lines than for 10"
