"""The measuring journal (:mod:`workers.measuring`): what a dead process was measuring
is found once, a live process's never, and a failed charge puts it back."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from workers.measuring import PREFIX, MeasureJournal


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_file_names_the_jobs_only_while_they_are_measured(tmp_path: Path) -> None:
    journal = MeasureJournal(tmp_path)
    with journal.measuring(["a", "b"]):
        assert [p.name.startswith(f"{PREFIX}{os.getpid()}-") for p in tmp_path.iterdir()] == [True]
        # a live process's file is never taken, not even by itself
        assert journal.take_left_by_the_dead() == {}
    assert list(tmp_path.iterdir()) == []


def test_what_a_dead_process_was_measuring_is_taken_once(tmp_path: Path) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    (tmp_path / f"{PREFIX}{_dead_pid()}-7.json").write_text(f'["{ids[0]}", "{ids[1]}"]')
    journal = MeasureJournal(tmp_path)

    taken = journal.take_left_by_the_dead()

    assert list(taken.values()) == [ids]
    assert MeasureJournal(tmp_path).take_left_by_the_dead() == {}  # another starter
    journal.settle(taken)
    assert list(tmp_path.iterdir()) == []


def test_a_charge_that_failed_is_given_back_for_the_next_start(tmp_path: Path) -> None:
    name = f"{PREFIX}{_dead_pid()}-7.json"
    (tmp_path / name).write_text(f'["{uuid.uuid4()}"]')
    journal = MeasureJournal(tmp_path)

    journal.give_back(journal.take_left_by_the_dead())

    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert len(journal.take_left_by_the_dead()) == 1


def test_a_folder_that_cannot_be_written_does_not_stop_the_work(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    journal = MeasureJournal(blocked / "journal")  # under a file: never a folder
    with journal.measuring(["a"]):
        pass
    assert journal.take_left_by_the_dead() == {}
