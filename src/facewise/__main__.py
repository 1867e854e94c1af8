"""``python -m facewise ...``: the same as the ``facewise`` command."""

from facewise.cli import app

app()
