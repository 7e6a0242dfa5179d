"""``infq dlq …``: the dispatcher's dead letters, summed up by code and sent again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infq.bus.kafka import make_publisher
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput
from infq.ops import dead_letters
from infq.outages import require_reachable
from infq.settings import Settings

console = Console()
app = typer.Typer(help="Dead letters: records the dispatcher refused, with their reasons.")

CodeOption = Annotated[
    list[str] | None, typer.Option("--code", help="Only letters with this code (repeatable).")
]
SinceOption = Annotated[
    str | None, typer.Option(help="Only letters refused at or after this ISO 8601 time (UTC).")
]
UntilOption = Annotated[
    str | None, typer.Option(help="Only letters refused before this ISO 8601 time (UTC).")
]


def _time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidInput(f"{option}: {text!r} is not an ISO 8601 time") from e
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _letters(
    settings: Settings, code: list[str] | None, since: str | None, until: str | None
) -> list[dead_letters.Letter]:
    keep = dead_letters.Filter(frozenset(code or ()), _time("--since", since),
                               _time("--until", until))  # fmt: skip
    require_reachable(settings, "kafka")
    return dead_letters.select(dead_letters.read(settings), keep)


@app.command("list")
def list_letters(
    code: CodeOption = None, since: SinceOption = None, until: UntilOption = None
) -> None:
    """Dead letters per code: how many, the first and the last, and an example reason."""
    settings = Settings()
    letters = _letters(settings, code, since, until)
    table = Table()
    table.add_column("code", no_wrap=True)
    for name in ("letters", "first", "last", "example"):
        table.add_column(name)
    examples = {x.letter.error.code: x.letter.error.message for x in letters}
    for found, n, first, last in dead_letters.summary(letters):
        table.add_row(found, str(n), first.isoformat(timespec="seconds"),
                      last.isoformat(timespec="seconds"), examples[found][:80])  # fmt: skip
    console.print(table)
    console.print(f"{len(letters)} dead letters on {settings.dlq_topic}")


@app.command("replay")
def replay(
    code: CodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be sent; send nothing.")
    ] = False,
) -> None:
    """Send the chosen letters' records again to the topic they came from (after the
    cause is fixed: a constraint, a column, a limit). Letters whose job has a row are
    skipped: that job is accounted for already (``infq jobs show`` says how)."""
    settings = Settings()
    letters = _letters(settings, code, since, until)
    require_reachable(settings, "postgres")
    publisher = make_publisher(settings)
    try:
        with one_shot_sessions(settings.database) as sessions:
            done = dead_letters.replay(letters, publisher=publisher, sessions=sessions,
                                       dry_run=dry_run)  # fmt: skip
    finally:
        publisher.close()
    verb = "would send" if dry_run else "sent"
    console.print(f"{verb} {done.sent} of {len(letters)} dead letters again; "
                  f"{done.has_row} skipped (their job has a row)")  # fmt: skip
