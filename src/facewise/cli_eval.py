"""``facewise eval ...`` and ``facewise calibrate``: the evaluation harness on the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli import JsonOpt, ProfileOpt, app, err, handled, out, progress_bar
from .errors import FacewiseError

eval_app = typer.Typer(help="Measure accuracy: pairs (verification), identify (open-set), fidelity.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Embedding cache folder (reruns are fast).")]


def _cache_default() -> Path:
    from .models.catalogue import cache_dir

    return Path(os.environ.get("FACEWISE_EVAL_CACHE", cache_dir().parent / "eval"))


def load_pairs(fmt: str, pairs: Path, root: Path | None) -> list:
    from .eval.pairs import parse_lfw_pairs, parse_pairs_csv

    if fmt == "lfw":
        return parse_lfw_pairs(pairs, root)
    if fmt == "csv":
        return parse_pairs_csv(pairs)
    raise FacewiseError(f"--format must be lfw or csv, got {fmt!r}")


@eval_app.command("pairs")
def eval_pairs(
    pairs: Annotated[Path, typer.Option("--pairs", help="pairs.txt (LFW format) or a path1,path2,same CSV")],
    fmt: Annotated[str, typer.Option("--format", help="lfw | csv")] = "lfw",
    root: Annotated[Path | None, typer.Option("--root", help="Image root for LFW format.")] = None,
    profile: ProfileOpt = "default",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write scores.csv, plots and report here.")] = None,
    no_face: Annotated[str, typer.Option(help="center | reject: images with no detected face")] = "center",
    limit: Annotated[int | None, typer.Option(help="First N same + N different pairs per fold.")] = None,
    cache: CacheOpt = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for intervals.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Verification accuracy on a pair list: 10-fold accuracy, AUC, EER, TAR at FAR (with 95 % intervals)."""
    from .eval.embed import embed_images
    from .eval.verification import PairScores, evaluate, write_outputs
    from .pipeline import Pipeline

    with handled():
        if no_face not in ("center", "reject"):
            raise FacewiseError("--no-face must be center or reject")
        plist = load_pairs(fmt, pairs, root)
        if limit:
            per: dict[tuple[int, bool], int] = {}
            kept = []
            for p in plist:
                key = (p.fold, p.same)
                per[key] = per.get(key, 0) + 1
                if per[key] <= limit:
                    kept.append(p)
            plist = kept
        pipe = Pipeline(profile).load()
        paths = list(dict.fromkeys(str(x) for p in plist for x in (p.path1, p.path2)))
        with progress_bar() as bar:
            task = bar.add_task(f"embedding ({pipe.profile.name})", total=len(paths))
            emb = embed_images(pipe, paths, cache_dir=cache or _cache_default(), no_face=no_face,  # type: ignore[arg-type]
                               progress=lambda k: bar.advance(task, k))
        ps = PairScores.from_embedded(plist, emb)
        report = evaluate(ps, n_boot=n_boot)
        report.no_face.update({"images": int(emb.no_face.sum()), "unreadable": int(emb.failed.sum()),
                               "scored_as": "centre-prior alignment" if no_face == "center" else "score -1 (reject)"})
        if out_dir:
            write_outputs(ps, report, out_dir, f"{pipe.profile.name} on {pairs.name}")
        d = report.to_dict()
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, **d}) + "\n")
        else:
            out.print(f"profile {pipe.profile.name}: {d['pairs']} pairs, accuracy {100 * d['accuracy']:.2f} % "
                      f"± {100 * d['accuracy_std']:.2f}, AUC {d['auc']:.5f}, EER {100 * d['eer']:.2f} %")
            for far, v in d["tar_at_far_ci"].items():
                out.print(f"  TAR @ FAR {far}: {v['tar']:.4f} [{v['low']:.4f}, {v['high']:.4f}]")
            out.print(f"  no face: {d['no_face']}")
            if out_dir:
                err.print(f"report written to {out_dir}")
