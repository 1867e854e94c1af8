"""``python -m facewise ...``: the same as the ``facewise`` command."""

from .cli import app

app()
