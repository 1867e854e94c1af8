"""The ``facewise`` command line: one module per command group, all registered on :data:`app`."""

from facewise.cli import (  # noqa: F401  (each module registers its commands on `app`)
    data,
    evaluate,
    models,
    people,
    recognize,
    redact,
    scale,
    serve,
    video,
)
from facewise.cli.common import app, models_app, people_app, plain_help

plain_help(app, people_app, models_app, data.encrypt_app, evaluate.eval_app, serve.keys_app)

__all__ = ["app"]
