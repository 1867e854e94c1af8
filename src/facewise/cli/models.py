"""Commands: `facewise models ...`."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from facewise.cli.common import EXIT_MODEL, JsonOpt, _emit_json, handled, models_app, out


# -- models -------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every model card, where its files are found, and which profiles are usable."""
    from facewise.models.catalogue import cards, is_available, search_path
    from facewise.models.profiles import load_profile, profile_names

    rows = [(c, is_available(c.id)) for c in cards().values()]
    profiles = [load_profile(n) for n in profile_names()]
    if as_json:
        _emit_json({"search_path": [str(p) for p in search_path()],
                    "models": [{**c.summary(), "available": ok} for c, ok in rows],
                    "profiles": [{"name": p.name, "available": p.available(), "models": p.models,
                                  "commercial_use": p.commercial} for p in profiles]})
        return
    t = Table("id", "task", "licence", "commercial use", "available")
    for c, ok in rows:
        t.add_row(c.id, c.task, c.licence, c.commercial, "[green]yes[/green]" if ok else "[red]no[/red]")
    out.print(t)
    t = Table("profile", "models", "available", "commercial use")
    for p in profiles:
        t.add_row(p.name, ", ".join(p.models), "yes" if p.available() else "no", p.commercial)
    out.print(t)
    out.print("search path: " + os.pathsep.join(str(p) for p in search_path()))


@models_app.command("info")
def models_info(model_id: str) -> None:
    """A model's card."""
    from facewise.models.catalogue import card, locate_file

    with handled():
        c = card(model_id)
        d = c.summary()
        for f in d["files"]:
            found = locate_file(next(x for x in c.files if x.path == f["path"]))
            f["found"] = str(found) if found else None
        _emit_json(d)


@models_app.command("verify")
def models_verify(model_ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Check model files against their sha256 (all available models by default)."""
    from facewise.models.catalogue import cards, is_available, verify

    ids = model_ids or [c for c in cards() if is_available(c)]
    bad = 0
    for mid in ids:
        with handled():
            for st in verify(mid):
                bad += not st.ok
                out.print(f"{mid}: {st.path}: {'[green]ok[/green]' if st.ok else '[red]' + st.reason + '[/red]'}")
    if bad:
        raise typer.Exit(EXIT_MODEL)


@models_app.command("fetch")
def models_fetch(model_id: str, timeout: float = 30.0) -> None:
    """Download a model's files (URL + sha256 from its card) into the per-user cache."""
    from facewise.models.catalogue import fetch

    with handled():
        for p in fetch(model_id, timeout=timeout):
            out.print(f"{model_id}: {p}")
