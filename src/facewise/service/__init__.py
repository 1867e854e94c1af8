"""``facewise serve``: a REST API (FastAPI) with API keys, collections, video jobs and a web page.

Needs the ``service`` extra (``pip install 'facewise[service]'``); start it with
``facewise serve --db gallery.db`` (docs/SERVICE.md). The application factory is
:func:`facewise.service.app.create_app`; this package itself imports no web framework.
"""

from facewise.service.config import Limits, RateLimit, ServiceConfig

__all__ = ["Limits", "RateLimit", "ServiceConfig"]
