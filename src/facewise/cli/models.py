"""Commands: `facewise models ...`."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from facewise.cli.common import EXIT_MODEL, JsonOpt, _emit_json, handled, models_app, out, report_error
from facewise.errors import ValidationError


# -- models -------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every model card, where its files are found, and which profiles are usable."""
    from facewise.models.catalogue import cards, search_path, state
    from facewise.models.profiles import load_profile, profile_names

    rows = [(c, state(c.id)) for c in cards().values()]
    profiles = [load_profile(n) for n in profile_names()]
    if as_json:  # one object per line: every model, every profile, the search path ("kind" tells which)
        for c, ok in rows:
            _emit_json({"kind": "model", **c.summary(), "available": ok == "available",
                        "fetchable": ok == "fetchable", "manual": ok == "manual", "state": ok})
        for p in profiles:
            _emit_json({"kind": "profile", "name": p.name, "available": p.available(), "models": p.models,
                        "commercial_use": p.commercial})
        _emit_json({"kind": "search_path", "paths": [str(p) for p in search_path()]})
        return
    t = Table("id", "task", "licence", "commercial use", "available")
    shown = {"available": "[green]yes[/green]", "fetchable": "no: `facewise models fetch`",
             "manual": "[red]no: by hand (`models info`)[/red]"}
    for c, ok in rows:
        t.add_row(c.id, c.task, c.licence, c.commercial, shown[ok])
    out.print(t)
    t = Table("profile", "models", "available", "commercial use")
    for p in profiles:
        t.add_row(p.name, ", ".join(p.models), "yes" if p.available() else "no", p.commercial)
    out.print(t)
    out.print("search path: " + os.pathsep.join(str(p) for p in search_path()))


@models_app.command("info")
def models_info(model_id: Annotated[str, typer.Argument(metavar="MODEL_ID")],
                as_json: Annotated[bool, typer.Option("--json", help="Accepted for symmetry: the card is always "
                                                                     "one JSON object.")] = True) -> None:
    """A model's card, as one JSON object."""
    from facewise.models.catalogue import card, locate_file

    with handled(as_json=True):
        c = card(model_id)
        d = c.summary()
        for f in d["files"]:
            found = locate_file(next(x for x in c.files if x.path == f["path"]))
            f["found"] = str(found) if found else None
        _emit_json(d)


@models_app.command("verify")
def models_verify(model_ids: Annotated[list[str] | None, typer.Argument(metavar="MODEL_ID...")] = None,
                  as_json: JsonOpt = False) -> None:
    """Check model files against their sha256 (all available models by default). Exit code 4 if any differs."""
    from facewise.models.catalogue import cards, is_available, verify

    ids = model_ids or [c for c in cards() if is_available(c)]
    bad = 0
    for mid in ids:
        with handled(as_json):
            for st in verify(mid):
                bad += not st.ok
                if as_json:
                    _emit_json({"model": mid, "path": str(st.path), "ok": st.ok, "reason": st.reason or None})
                else:
                    out.print(f"{mid}: {st.path}: "
                              f"{'[green]ok[/green]' if st.ok else '[red]' + escape(st.reason) + '[/red]'}")
    if bad:
        raise typer.Exit(EXIT_MODEL)


@models_app.command("fetch")
def models_fetch(model_ids: Annotated[list[str] | None, typer.Argument(metavar="MODEL_ID...")] = None,
                 profile: Annotated[list[str] | None, typer.Option(
                     "--profile", "-p", metavar="NAME", help="Fetch every model of this profile (repeatable).")] = None,
                 analysis: Annotated[bool, typer.Option(
                     "--analysis", help="Also fetch the models `analyze` uses (liveness, head pose).")] = False,
                 timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per download.")] = 30.0,
                 as_json: JsonOpt = False) -> None:
    """Download models (URL + sha256 from their cards) into the per-user cache: by id, a profile's whole set
    (--profile) and the analysis models (--analysis). Files already on the search path are not downloaded
    again; a download failing its sha256 is deleted. Any file not obtained: one message each, exit code 4."""
    from facewise.models.catalogue import ANALYSIS_MODELS, fetch_many
    from facewise.models.profiles import load_profile, profile_names

    with handled(as_json):
        ids = list(model_ids or [])
        for name in profile or []:
            if name not in profile_names():
                raise ValidationError(f"--profile: unknown profile {name!r}; known: {', '.join(profile_names())}")
            ids += load_profile(name).models
        if analysis:
            ids += ANALYSIS_MODELS
        if not ids:
            raise ValidationError("name a MODEL_ID, --profile NAME or --analysis")
        results = fetch_many(ids, timeout=timeout)
    failures = [r for r in results if r.error is not None]
    for r in results:
        if r.error is not None:
            report_error(r.error, as_json, model=r.model, file=r.file)
        elif as_json:
            _emit_json({"model": r.model, "file": r.file, "path": str(r.path), "downloaded": r.downloaded})
        else:
            out.print(f"{r.model}: {r.path}{' (downloaded)' if r.downloaded else ''}", markup=False)
    if failures:
        raise typer.Exit(max(f.error.exit_code for f in failures if f.error is not None))
