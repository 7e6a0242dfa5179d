"""``python -m infq`` is the ``infq`` command."""

from infq.cli import main

main()
