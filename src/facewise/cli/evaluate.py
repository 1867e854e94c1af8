"""``facewise eval ...`` and ``facewise calibrate``: the evaluation harness on the command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from facewise import settings
from facewise.cli.common import EXIT_INPUT, JsonOpt, ProfileOpt, app, choice, err, handled, out, progress_bar
from facewise.core.outfiles import write_text
from facewise.errors import BadInputError, ModelNotFoundError, NotFoundError, ValidationError
from facewise.eval.coverage import check_files
from facewise.eval.pairs import limit_per_fold

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from facewise.core.pipeline import Pipeline
    from facewise.eval.embed import EmbeddedImages, NoFace
    from facewise.eval.pairlist import PairList

eval_app = typer.Typer(help="Measure accuracy: pairs (verification), identify (open-set), fidelity.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Embedding cache folder (reruns are fast).")]


def _folder(path: Path) -> Path:
    if not path.is_dir():
        raise NotFoundError(f"{path}: no such folder")
    return path


def _cache_default() -> Path:
    return settings.eval_cache_dir()


def load_pairs(fmt: str, pairs: Path, root: Path | None, columns: str | None = None) -> PairList:
    """The pair list through the eval layer's one reader (format, paths, folds: facewise/eval/pairlist.py)."""
    from facewise.eval.pairlist import FORMATS, load_pair_list

    choice(fmt, "--format", FORMATS)  # checked before the file is read: a usage error is exit 2
    return load_pair_list(pairs, fmt=fmt, root=root, columns=columns)


def fused_score_fn(pipe: Pipeline, emb: EmbeddedImages) -> Callable[[Any, Any], np.ndarray] | None:
    """The profile's pair scorer (kept here for bench scripts): facewise.eval.verification.fused_score_fn."""
    from facewise.eval.verification import fused_score_fn as scorer

    return scorer(pipe, emb)


FormatOpt = Annotated[str, typer.Option(
    "--format", help="auto | lfw | csv | tsv | cfp | cfp-fp | cfp-ff (auto: told from the file or folder)")]
RootOpt = Annotated[Path | None, typer.Option(
    "--root", help="Join relative image paths to this folder (every format; default: the list's folder).")]
ColumnsOpt = Annotated[str | None, typer.Option(
    "--columns", help="CSV/TSV: IMAGE1,IMAGE2,LABEL[,FOLD] header names or 1-based numbers.")]


@eval_app.command("pairs")
def eval_pairs(
    pairs: Annotated[Path, typer.Option(
        "--pairs", help="LFW pairs.txt, a CSV/TSV image1,image2,label list, or a CFP dataset/Protocol folder")],
    fmt: FormatOpt = "auto",
    root: RootOpt = None,
    columns: ColumnsOpt = None,
    allow_missing: Annotated[str | None, typer.Option(
        "--allow-missing", metavar="N%", help="Share of unreadable images tolerated (their pairs are left out; "
        "default 0%: any is an error, exit 3).")] = None,
    profile: ProfileOpt = "default",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write scores.csv, plots and report here.")] = None,
    no_face: Annotated[str, typer.Option(help="center | reject: images with no detected face")] = "center",
    limit: Annotated[int | None, typer.Option(min=1, help="First N same + N different pairs per fold.")] = None,
    cache: CacheOpt = None,
    n_boot: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for intervals.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Verification accuracy on a pair list: 10-fold accuracy, AUC, EER, TAR at FAR (with 95 % intervals), over
    the pairs whose images could be read (the report names the others)."""
    from dataclasses import replace

    from facewise.core.pipeline import Pipeline
    from facewise.eval.coverage import parse_allowance
    from facewise.eval.verification import measure_pair_list, write_outputs

    with handled(as_json):
        choice(no_face, "--no-face", ("center", "reject"))
        allowance = parse_allowance(allow_missing)
        plist = load_pairs(fmt, pairs, root, columns)
        plist = replace(plist, pairs=limit_per_fold(plist.pairs, limit))
        check_files(plist, allowance)  # before the models load (measure_pair_list checks again, cheaply)
        pipe = Pipeline(profile).load()
        images = len(plist.images())
        with progress_bar() as bar:
            task = bar.add_task(f"embedding ({pipe.profile.name})", total=images)
            ps, report = measure_pair_list(pipe, plist, allow_missing=allowance, no_face=cast("NoFace", no_face),
                                           cache_dir=cache or _cache_default(), n_boot=n_boot,
                                           progress=lambda k: bar.advance(task, k))
        if out_dir:
            write_outputs(ps, report, out_dir, f"{pipe.profile.name} on {pairs.name}")
        d = report.to_dict()
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, **d}) + "\n")
            return
        cov, src = d["coverage"], d["pair_list"]
        out.print(f"profile {pipe.profile.name}: {cov['measured_pairs']} of {cov['listed_pairs']} pairs measured, "
                  f"accuracy {100 * d['accuracy']:.2f} % ± {100 * d['accuracy_std']:.2f}, AUC {d['auc']:.5f}, "
                  f"EER {100 * d['eer']:.2f} %")
        for far, v in d["tar_at_far_ci"].items():
            out.print(f"  TAR @ FAR {far}: {v['tar']:.4f} [{v['low']:.4f}, {v['high']:.4f}]")
        out.print(f"  list: {src['format']} {src['file']}; images under {src['root']} ({src['root_from']}); "
                  f"{src['folds']} folds by {src['folds_by']}")
        if cov["unreadable_images"]:
            out.print(f"  unreadable: {cov['unreadable_images']} of {cov['images']} images (allowed "
                      f"{cov['allow_missing']}), {cov['excluded_pairs']} pairs left out: "
                      f"{', '.join(cov['unreadable'])}")
        if cov["no_face_images"]:
            out.print(f"  no face: {cov['no_face_images']} images ({cov['no_face_scored_as']}): "
                      f"{', '.join(cov['no_face'])}")
        if out_dir:
            err.print(f"report written to {out_dir}")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise ValidationError(f"--persons must be sizes such as 100,400,1000 (got {text!r})", what="persons",
                              value=text, valid="positive integers, comma-separated") from None
    if not sizes or sizes[0] < 1:
        raise ValidationError(f"--persons must be positive (got {text!r})", what="persons", value=text,
                              valid="positive integers, comma-separated")
    return sizes


def _embed_with_bar(pipe: Pipeline, paths: list[str], cache: Path | None, no_face: str = "center") -> EmbeddedImages:
    from facewise.eval.embed import embed_images

    choice(no_face, "--no-face", ("center", "reject"))
    with progress_bar() as bar:
        task = bar.add_task(f"embedding ({pipe.profile.name})", total=len(paths))
        return embed_images(pipe, paths, cache_dir=cache or _cache_default(), no_face=cast("NoFace", no_face),
                            progress=lambda k: bar.advance(task, k))


@eval_app.command("identify")
def eval_identify(
    root: Annotated[Path, typer.Argument(help="Folder of identities: <root>/<person>/*.jpg (or Yale's flat names)")],
    profile: ProfileOpt = "default",
    gallery_per_person: Annotated[int, typer.Option(min=1, help="Images enrolled per enrolled person.")] = 1,
    min_images: Annotated[int, typer.Option(min=2, help="Use identities with at least this many images.")] = 2,
    seed: int = 0,
    persons: Annotated[str | None, typer.Option(
        "--persons", metavar="N[,N...]", help="Enrol this many persons (nested sizes, e.g. 100,400,1000) and check "
        "the stated FPIR of facewise's decisions at each size against the observed one.")] = None,
    strangers: Annotated[int | None, typer.Option(
        min=1, help="With --persons: search one photo of this many never-enrolled identities.")] = None,
    cache: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open-set identification: rank-1/rank-5, FPIR-FNIR, FNIR at FPIR = 1 %; with --persons, stated vs
    observed FPIR of the decisions at each gallery size."""
    from facewise.core.pipeline import Pipeline
    from facewise.eval.identify import OpenSetProtocol, decisions_at_sizes, evaluate_open_set, identity_folder, split

    with handled(as_json):
        _folder(root)
        ids = identity_folder(root)
        sizes = _sizes(persons) if persons else []
        proto = OpenSetProtocol(min_images=min_images, gallery_per_person=gallery_per_person, seed=seed,
                                persons=max(sizes) if sizes else None,
                                strangers=strangers if sizes else None, probes_per_person=1 if sizes else None)
        gallery, mated, nonmated = split(ids, proto)
        if not gallery or not mated or not nonmated:
            raise BadInputError(f"{root}: too few identities with >= {min_images} images for an open-set split")
        pipe = Pipeline(profile).load()
        emb = _embed_with_bar(pipe, [p for _, p in gallery + mated + nonmated], cache)
        res = evaluate_open_set(emb, gallery, mated, nonmated)
        if sizes:
            res["decisions"] = decisions_at_sizes(emb, gallery, mated, nonmated, pipe.profile, sizes)
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, "dataset": str(root), **res}) + "\n")
            return
        for row in res.get("decisions", []):
            for key in ("default", "far_0.001"):
                d = row[key]
                out.print(f"  {row['persons']:>5} persons, {key:>9}: threshold {d['threshold']:.4f}  "
                          f"stated FPIR {d['stated_fpir']:.3g}  observed {d['observed_fpir']:.3g} "
                          f"({row['strangers']} strangers)  FNIR {d['fnir']}")
        out.print(f"profile {pipe.profile.name} on {root}: {res['gallery_persons']} enrolled, "
                  f"{res['mated_probes']} mated / {res['nonmated_probes']} non-mated probes")
        out.print(f"  rank-1 {res['rank1']:.4f}  rank-5 {res['rank5']:.4f}  "
                  f"FNIR @ FPIR 1 % {res['fnir_at_fpir_0.01']:.4f}")


@eval_app.command("degrade")
def eval_degrade(
    pairs: Annotated[Path, typer.Option("--pairs", help="A pair list, as for eval pairs")],
    fmt: FormatOpt = "auto",
    root: RootOpt = None,
    columns: ColumnsOpt = None,
    profile: ProfileOpt = "default",
    limit: Annotated[int | None, typer.Option(min=1, help="First N same + N different pairs per fold.")] = None,
    cache: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verification under degradation of the probe: 32/24/16 px faces, blur, motion blur, JPEG 10, elastic."""
    from facewise.core.pipeline import Pipeline
    from facewise.eval.degrade import run_degradation

    with handled(as_json):
        listed = load_pairs(fmt, pairs, root, columns)
        check_files(listed)  # no --allow-missing here: every image must be there
        plist = limit_per_fold(listed.pairs, limit)
        pipe = Pipeline(profile).load()
        emb = _embed_with_bar(pipe, list(dict.fromkeys(str(p.path1) for p in plist)), cache)
        probes = len({str(p.path2) for p in plist})
        with progress_bar() as bar:
            task = bar.add_task("degrading", total=probes)
            res = run_degradation(pipe, plist, emb, progress=lambda k: bar.advance(task, k))
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, "pairs": len(plist), **res}) + "\n")
            return
        from rich.table import Table

        t = Table("condition", "accuracy", "AUC", "TAR@1e-2", "TAR@1e-3")
        for name, r in res["results"].items():
            t.add_row(name, f"{r['accuracy']:.4f}", f"{r['auc']:.4f}", str(r.get("tar_at_far_0.01", "–")),
                      str(r.get("tar_at_far_0.001", "–")))
        out.print(t)


@eval_app.command("fidelity")
def eval_fidelity(
    orig_dir: Annotated[Path, typer.Argument(help="Original images.")],
    recon_dir: Annotated[Path, typer.Argument(help="Reconstructed/generated images, same relative paths.")],
    profile: ProfileOpt = "default",
    far: Annotated[float, typer.Option(
        min=1e-9, max=1.0, help="Report the share of pairs above the threshold at this FAR.")] = 1e-3,
    as_json: JsonOpt = False,
) -> None:
    """Identity similarity between originals and their reconstructions (mean, share above threshold, by size)."""
    from facewise.core.pipeline import Pipeline
    from facewise.decision.matching import decide
    from facewise.eval.fidelity import fidelity, match_files

    with handled(as_json):
        for d in (orig_dir, recon_dir):
            if not d.is_dir():
                raise NotFoundError(f"{d}: no such folder")
        pairs = match_files(orig_dir, recon_dir)
        if not pairs:
            raise BadInputError(f"no files of {orig_dir} have a counterpart in {recon_dir}")
        pipe = Pipeline(profile).load()
        threshold = decide(pipe.profile, {"target_far": far}).threshold
        with progress_bar() as bar:
            task = bar.add_task("fidelity", total=len(pairs))
            res = fidelity(pipe, pairs, threshold, progress=lambda k: bar.advance(task, k))
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, "far": far, **res}) + "\n")
        else:
            out.print(f"{res['pairs']} pairs: mean identity similarity {res['mean_similarity']}, "
                      f"{100 * (res['share_above_threshold'] or 0):.1f} % above the FAR={far:g} threshold "
                      f"({res['threshold']:.3f})")
            for name, r in res["by_face_size"].items():
                out.print(f"  {name}: {r['pairs']} pairs, mean {r['mean']}, "
                          f"above {100 * r['share_above_threshold']:.1f} %")
    if res["unreadable"]:  # reported with the others measured; the exit code says some input was bad
        err.print(f"[red]error:[/red] {res['unreadable']} unreadable image(s), skipped (see the warnings)")
        raise typer.Exit(EXIT_INPUT)


@app.command()
def calibrate(
    folder: Annotated[Path | None, typer.Option(help="Labelled folder <person>/*.jpg")] = None,
    pairs: Annotated[Path | None, typer.Option(help="Or a pair list; identities = image parent folders")] = None,
    fmt: FormatOpt = "auto",
    root: RootOpt = None,
    columns: ColumnsOpt = None,
    profile: ProfileOpt = "default",
    db: Annotated[str | None, typer.Option(
        "--db", help="Store the calibration in this gallery's collection (file, postgresql:// or milvus://).")] = None,
    collection: Annotated[str, typer.Option("--collection", "-c")] = "default",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the calibration JSON here.")] = None,
    write_profile: Annotated[bool, typer.Option(help="Maintainers: store it in the shipped profile file.")] = False,
    max_impostors: Annotated[int, typer.Option(min=1, help="Most impostor scores sampled.")] = 2_000_000,
    cache: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Thresholds at target FARs (with 95 % intervals) from labelled data, stored where you say."""
    from facewise.core.pipeline import Pipeline
    from facewise.eval.calibrate import fit_calibration
    from facewise.eval.identify import identity_folder
    from facewise.models.profiles import PROFILE_DIR

    with handled(as_json):
        if (folder is None) == (pairs is None):
            raise ValidationError("give --folder or --pairs (one of them)")
        if folder is not None:
            ids = identity_folder(folder)
            items = [(n, f) for n, files in ids.items() for f in files]
        else:
            listed = load_pairs(fmt, pairs, root, columns)  # type: ignore[arg-type]  # not None: one of --folder/--pairs, checked above
            check_files(listed)  # no --allow-missing here: every image must be there
            paths = list(dict.fromkeys(str(x) for p in listed.pairs for x in (p.path1, p.path2)))
            items = [(Path(p).parent.name, p) for p in paths]
        if db:  # the gallery and collection must exist before the (long) embedding: nothing is created
            from facewise.api import FaceWise

            FaceWise(db=db, profile=profile, collection=collection, create=False).close()
        pipe = Pipeline(profile).load()
        emb = _embed_with_bar(pipe, [f for _, f in items], cache)
        where = {p: n for n, p in items}
        from facewise.decision.fusion import FusionScorer

        cal = fit_calibration(emb, [where[p] for p in emb.paths], max_impostors=max_impostors,
                              scorer=FusionScorer(pipe.profile))
        table = cal.thresholds_at([f for f in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6) if f * cal.n_impostor >= 1])
        doc = cal.to_dict()
        if out_file:
            write_text(out_file, json.dumps(doc))
        if db:
            from facewise.api import FaceWise

            with FaceWise(db=db, profile=pipe.profile, collection=collection, create=False) as fw:
                fw.set_calibration(doc)  # refused if the collection's target FAR falls outside it
        if write_profile:
            path = PROFILE_DIR / f"{pipe.profile.name}.json"
            prof = json.loads(path.read_text())
            prof["calibration"] = doc
            write_text(path, json.dumps(prof, indent=2) + "\n")
        rows = [{"far": t.far, "threshold": round(t.threshold, 5), "low": round(t.low, 5), "high": round(t.high, 5),
                 "tar": None if t.tar is None else round(t.tar, 5)} for t in table]
        if as_json:
            sys.stdout.write(json.dumps({"profile": pipe.profile.name, "impostors": cal.n_impostor,
                                         "genuine": cal.n_genuine, "thresholds": rows}) + "\n")
            return
        out.print(f"profile {pipe.profile.name}: {cal.n_impostor} impostor and {cal.n_genuine} genuine scores")
        for r in rows:
            out.print(f"  FAR {r['far']:g}: threshold {r['threshold']} [{r['low']}, {r['high']}], TAR {r['tar']}")


def _live_setup(profile: str, model: str | None) -> tuple[Any, Any, Any]:
    """The product's detector and liveness scorer (``model`` picks fused / minifasnet for comparison)."""
    import numpy as np

    from facewise.core.analysis import Analyzer
    from facewise.core.pipeline import Pipeline

    analyzer = Analyzer()
    if analyzer.live_model is None:
        raise ModelNotFoundError("the anti-spoofing model minifasnet-v2-v1se is not on the model path")
    if model not in (None, "fused", "minifasnet"):
        raise ValidationError(f"--model must be fused or minifasnet, got {model!r}")
    if model == "minifasnet" and analyzer.live_model_name == "fused":
        analyzer.live_model = analyzer.antispoof
    elif model == "fused" and analyzer.live_model_name != "fused":
        raise ModelNotFoundError("the fused liveness weights (models/weights/liveness-fused.weights) are missing")
    pipe = Pipeline(profile).load()

    def detect(rgb: np.ndarray) -> np.ndarray:
        d = pipe.detector.detect(rgb)
        return np.array([[x.box.x1, x.box.y1, x.box.x2, x.box.y2] for x in d]).reshape(-1, 4)

    return analyzer, pipe, detect


SizeOpt = Annotated[int, typer.Option(help="Resize every image to size x size first (crops differ); 0 = native.")]
LiveModelOpt = Annotated[str | None, typer.Option("--model", help="fused | minifasnet (default: the product's)")]


@eval_app.command("liveness")
def eval_liveness(
    root: Annotated[Path, typer.Option("--root", help="Folder with real/ and fake/ (images or videos)")],
    size: SizeOpt = 224,
    threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="P(live) threshold (default: the product's)")] = None,
    threshold_file: Annotated[Path | None, typer.Option(help="Decide at a calibrate-liveness threshold file.")] = None,
    fit_threshold: Annotated[Path | None, typer.Option(
        help="Fit a threshold on root/real (target BPCER), write it here and report at it (in-sample).")] = None,
    target_bpcer: Annotated[float, typer.Option(min=0.0, max=1.0, help="BPCER the fitted threshold aims at.")] = 0.05,
    model: LiveModelOpt = None,
    video_stride: Annotated[int, typer.Option(min=1, help="Every N-th frame of videos.")] = 10,
    profile: ProfileOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Presentation-attack detection as the product decides: APCER, BPCER, ACER and EER (ISO/IEC 30107-3).

    The largest detected face of each sample is scored; a sample with no detected face is refused (an
    attack without a face counts as stopped, a bona fide one as refused) and counted under no_face.
    """
    import numpy as np

    from facewise.core.analysis import LiveThreshold
    from facewise.eval.liveness import evaluate_liveness, product_rates
    from facewise.eval.liveness import fit_threshold as fit_thr

    with handled(as_json):
        _folder(root)
        if sum(x is not None for x in (threshold, threshold_file, fit_threshold)) > 1:
            raise ValidationError("give at most one of --threshold, --threshold-file, --fit-threshold")
        analyzer, pipe, detect = _live_setup(profile, model)
        if threshold_file is not None:
            analyzer.set_live_threshold(LiveThreshold.load(threshold_file))
        thr = threshold if threshold is not None else analyzer.live_threshold()[0]
        res = evaluate_liveness(root, analyzer.live_model, detect, size=size or None, threshold=thr,
                                video_stride=video_stride)
        if fit_threshold is not None:
            t = LiveThreshold(analyzer.live_model_name, fit_thr(res["scores"]["real"], target_bpcer), target_bpcer,
                              int((~np.isnan(res["scores"]["real"])).sum()), str(root / "real"))
            t.save(fit_threshold)
            real, fake = res["scores"]["real"], res["scores"]["fake"]
            res.update(threshold=t.threshold, **product_rates(real, fake, t.threshold),
                       faces_only=product_rates(real[~np.isnan(real)], fake[~np.isnan(fake)], t.threshold))
        res.pop("scores", None)
        res.pop("names", None)
        res["model"] = analyzer.live_model_name
        if as_json:
            sys.stdout.write(json.dumps({"detector": pipe.profile.detector, **res}, default=float) + "\n")
            return
        out.print(f"{res['n_real']} bona fide, {res['n_fake']} attacks ({size or 'native'} px, detector "
                  f"{pipe.profile.detector}, scorer {res['model']})")
        out.print(f"  at {res['threshold']:.3f}: APCER {res['apcer']:.4f}  BPCER {res['bpcer']:.4f}  "
                  f"ACER {res['acer']:.4f}")
        out.print(f"  EER {res['eer']:.4f} at {res['eer_threshold']:.3f}; no face (refused): {res['no_face']}")
        fo = res["faces_only"]
        out.print(f"  over the samples with a face only: APCER {fo['apcer']:.4f}  BPCER {fo['bpcer']:.4f}  "
                  f"ACER {fo['acer']:.4f}")
        if fit_threshold is not None:
            err.print(f"threshold written to {fit_threshold}")


@app.command("calibrate-liveness")
def calibrate_liveness(
    bona_fide: Annotated[Path, typer.Argument(help="Folder of your own bona fide (live) images or videos.")],
    out_file: Annotated[Path, typer.Option("--out", help="Write the threshold file here.")],
    target_bpcer: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of your live faces the threshold may refuse.")] = 0.05,
    size: SizeOpt = 0,
    video_stride: Annotated[int, typer.Option(min=1, help="Every N-th frame of videos.")] = 10,
    profile: ProfileOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Fit a liveness threshold on your own bona fide samples (for --live-threshold / FACEWISE_LIVENESS_THRESHOLD)."""
    import numpy as np

    from facewise.core.analysis import LiveThreshold
    from facewise.eval.liveness import collect
    from facewise.eval.liveness import fit_threshold as fit_thr

    with handled(as_json):
        if not bona_fide.is_dir():
            raise NotFoundError(f"{bona_fide} is not a folder")
        analyzer, _, detect = _live_setup(profile, None)
        names, mat = collect(bona_fide, analyzer.live_model.live_scores, detect,
                             (size, size) if size else None, video_stride)
        scores = mat[:, 0]
        t = LiveThreshold(analyzer.live_model_name, fit_thr(scores, target_bpcer), target_bpcer,
                          int((~np.isnan(scores)).sum()), str(bona_fide))
        t.save(out_file)
        doc = {**t.__dict__, "samples": len(names), "no_face": int(np.isnan(scores).sum()), "out": str(out_file)}
        if as_json:
            sys.stdout.write(json.dumps(doc) + "\n")
            return
        out.print(f"{doc['samples']} samples, {t.n_bona_fide} with a face: threshold {t.threshold:.4f} "
                  f"({t.model}, target BPCER {target_bpcer:g}) written to {out_file}")


def _frames(source: str, stride: int) -> Iterator[tuple[float, Any]]:
    from facewise.eval.challenge import video_frames

    return video_frames(source, stride)


@app.command("challenge")
def challenge(
    source: Annotated[str, typer.Argument(help="A video file, or a camera index (0) for a live check.")],
    steps: Annotated[str | None, typer.Option(help="Comma-separated: left,right,up,closer (default: random).")] = None,
    n_steps: Annotated[int, typer.Option(
        "--random", min=1, max=4, help="How many random steps when --steps is not given.")] = 2,
    time_limit: Annotated[float, typer.Option(min=0.1, help="Seconds to complete every step.")] = 10.0,
    stride: Annotated[int, typer.Option(min=1, help="Check every Nth frame.")] = 1,
    profile: ProfileOpt = "fast",
    as_json: JsonOpt = False,
) -> None:
    """Active liveness: ask for head motions, check them on the tracked face in time, with the passive score.

    Exit code 0 when the challenge passes, 10 when it does not.
    """
    from facewise.cli.common import EXIT_DIFFERENT
    from facewise.core.analysis import Analyzer
    from facewise.core.challenge import PROMPTS, ChallengePolicy, parse_steps, random_steps, run_challenge
    from facewise.core.pipeline import Pipeline

    with handled(as_json):
        if stride < 1:
            raise ValidationError("--stride must be >= 1")
        wanted = parse_steps(steps) if steps else random_steps(n_steps)
        pipe = Pipeline(profile).load()
        analyzer = Analyzer()

        def prompt(step: str | None) -> None:
            if step is not None and not as_json:
                err.print(f"now: {PROMPTS[step]}")

        res = run_challenge(_frames(source, stride), wanted, pipe, analyzer,
                            ChallengePolicy(time_limit_s=time_limit), on_step=prompt)
        if as_json:
            sys.stdout.write(json.dumps({"source": source, **res}) + "\n")
        else:
            verdict = "PASSED" if res["passed"] else "FAILED"
            out.print(f"{verdict}: steps {','.join(res['steps'])}; done {[d['step'] for d in res['done']]}"
                      + (f" ({res['reason']})" if res["reason"] else "")
                      + (f"; passive P(live) {res['passive_live']:.2f}" if res["passive_live"] is not None else ""))
        if not res["passed"]:
            raise typer.Exit(EXIT_DIFFERENT)


@eval_app.command("expression")
def eval_expression(
    root: Annotated[Path, typer.Option("--root", help="Folder of <emotion>/*.jpg (FER2013 layout)")],
    as_json: JsonOpt = False,
) -> None:
    """Expression accuracy, per-class recall and the confusion matrix of the shipped expression model."""
    import cv2
    import numpy as np

    from facewise.core.imageio import load_image
    from facewise.models.attributes.expression import ExpressionModel

    with handled(as_json):
        _folder(root)
        model = ExpressionModel.from_default()
        classes = list(model.CLASSES)
        files = [(c, f) for c in classes if (root / c).is_dir() for f in sorted((root / c).iterdir()) if f.is_file()]
        if not files:
            raise BadInputError(f"{root}: no <emotion>/ folders named {', '.join(classes)}")
        conf = np.zeros((len(classes), len(classes)), np.int64)
        with progress_bar() as bar:
            task = bar.add_task("expression", total=len(files))
            for i in range(0, len(files), 256):
                chunk = files[i : i + 256]
                crops = [cv2.cvtColor(load_image(f).pixels, cv2.COLOR_RGB2GRAY) for _, f in chunk]
                pred = model.predict(crops).argmax(1)
                for (c, _), p in zip(chunk, pred, strict=True):
                    conf[classes.index(c), p] += 1
                bar.advance(task, len(chunk))
        acc = float(np.trace(conf) / conf.sum())
        recall = {c: round(float(conf[i, i] / max(conf[i].sum(), 1)), 4) for i, c in enumerate(classes)}
        res = {"images": int(conf.sum()), "accuracy": round(acc, 4), "per_class_recall": recall,
               "classes": classes, "confusion": conf.tolist()}
        if as_json:
            sys.stdout.write(json.dumps(res) + "\n")
            return
        out.print(f"{res['images']} images: accuracy {100 * acc:.2f} %")
        out.print("  recall: " + ", ".join(f"{c} {v:.3f}" for c, v in recall.items()))
        out.print("  confusion (rows = truth): " + json.dumps(conf.tolist()))
