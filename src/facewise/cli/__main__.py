"""``python -m facewise.cli``."""

from facewise.cli import app

app()
