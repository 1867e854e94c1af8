"""The ``facewise`` command line: one module per command group, all registered on :data:`app`."""

from facewise.cli import (  # noqa: F401  (each module registers its commands on `app`)
    data,
    evaluate,
    models,
    people,
    recognize,
    scale,
    serve,
    video,
)
from facewise.cli.common import app

__all__ = ["app"]
