"""Anyone's pair list, read one way: the format (named or detected), where its relative paths point, and how its
pairs are split into folds. Every door (``facewise eval pairs|degrade``, ``facewise calibrate --pairs``, the
library) reads lists through :func:`load_pair_list`.

Formats (``FORMATS``):

* ``lfw``: LFW's ``pairs.txt`` (and its dev lists or header-less variants):
  :func:`~facewise.eval.pairs.parse_lfw_pairs`.
* ``csv`` / ``tsv``: a delimited list, :func:`~facewise.eval.pairs.parse_pairs_csv` (comma / tab; ``auto`` also
  recognises ``;``); ``columns`` names the image and label columns when the list has other ones.
* ``cfp-fp`` / ``cfp-ff``: the CFP pose benchmark's protocol folder: ``Protocol/Pair_list_F.txt`` and
  ``Protocol/Pair_list_P.txt`` (lines ``index path``) and ``Protocol/Split/FP|FF/01..10/same.txt|diff.txt``
  (lines ``i,j``: frontal index and profile index for FP, two frontal indexes for FF). The split folders are
  the folds. ``cfp`` picks FF when given ``Split/FF``, else FP. The list may be named by the dataset folder, its
  ``Protocol`` folder, a ``Pair_list_*.txt`` or a ``Split/FP|FF`` folder.
* ``auto`` (the default): a folder or ``Pair_list_*.txt`` is CFP; ``.csv`` / ``.tsv`` by name; otherwise an LFW
  first line (``10 300``, ``name n1 n2``, ``name1 n1 name2 n2``) is LFW, a tab is TSV, a comma or ``;`` CSV.

Paths: a relative image path is joined to ``root`` when given (every format), else to the list's folder (LFW:
``images/`` beside the list when there is one; CFP: the ``Protocol`` folder, as CFP's ``../Data/...`` paths
expect). :attr:`PairList.root_from` says which.

Folds (:attr:`PairList.folds_by`): ``list`` where the list gives them (LFW's header, CFP's splits, a ``fold``
column); else ``identity`` (LFW names, or each image's parent folder where those agree with the labels); else
``pair``, with a warning in :attr:`PairList.warnings`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from facewise.errors import NotFoundError, ValidationError
from facewise.eval.pairs import (
    Columns,
    FoldsBy,
    Pair,
    PairListError,
    _read_lines,
    fold_pairs,
    parse_lfw_pairs,
    read_delimited,
)

__all__ = ["FORMATS", "PairList", "detect_format", "load_pair_list", "parse_cfp"]

logger = logging.getLogger(__name__)

StrPath = str | PathLike[str]
FORMATS = ("auto", "lfw", "csv", "tsv", "cfp", "cfp-fp", "cfp-ff")
_DELIMITER = {"csv": ",", "tsv": "\t"}
_LFW_LINE = re.compile(r"^\d+(\s+\d+)?$|^\S+\s+\d+\s+\d+$|^\S+\s+\d+\s+\S+\s+\d+$")


@dataclass(frozen=True)
class PairList:
    """A parsed pair list and what the report must say about how it was read."""

    pairs: list[Pair]
    source: Path
    format: str  # lfw | csv | tsv | cfp-fp | cfp-ff
    root: Path  # what relative image paths were joined to
    root_from: str  # "--root" | "the list's folder" | "images/ beside the list" | "the Protocol folder"
    folds_by: FoldsBy
    warnings: list[str] = field(default_factory=list)

    def images(self) -> list[str]:
        """The distinct image paths, in list order."""
        return list(dict.fromkeys(str(x) for p in self.pairs for x in (p.path1, p.path2)))

    @property
    def n_folds(self) -> int:
        return len({p.fold for p in self.pairs})

    def describe(self) -> dict[str, Any]:
        """JSON-able: the list, its format, where relative paths point and how the folds were made."""
        return {"file": str(self.source), "format": self.format, "root": str(self.root), "root_from": self.root_from,
                "folds_by": self.folds_by, "folds": self.n_folds, "warnings": list(self.warnings)}


def _cfp_protocol(path: Path) -> tuple[Path, str | None]:
    """The CFP ``Protocol`` folder that ``path`` names, and the protocol when the path says it (``Split/FF``)."""
    if path.is_file() and path.name in ("Pair_list_F.txt", "Pair_list_P.txt"):
        return path.parent, None
    if path.is_dir():
        if (path / "Protocol" / "Pair_list_F.txt").is_file():
            return path / "Protocol", None
        if (path / "Pair_list_F.txt").is_file():
            return path, None
        if path.parent.name == "Split" and path.name.upper() in ("FP", "FF"):
            return path.parent.parent, path.name.upper()
        if path.name == "Split" and (path.parent / "Pair_list_F.txt").is_file():
            return path.parent, None
    raise PairListError(f"{path}: is a folder, not a pair list (nor a CFP dataset: no Protocol/Pair_list_F.txt)")


def detect_format(path: StrPath) -> str:
    """The format ``auto`` reads ``path`` as (rules in the module docstring)."""
    p = Path(path)
    if p.is_dir() or p.name in ("Pair_list_F.txt", "Pair_list_P.txt"):
        _, proto = _cfp_protocol(p)
        return "cfp-ff" if proto == "FF" else "cfp-fp"
    if p.suffix.lower() in (".csv", ".tsv"):
        return p.suffix.lower()[1:]
    first = next((line.strip() for line in _read_lines(p) if line.strip()), "")
    if not first:
        raise PairListError(f"{p}: empty pair list")
    if "," not in first and ";" not in first and _LFW_LINE.match(first):
        return "lfw"
    if "\t" in first:
        return "tsv"
    if "," in first or ";" in first:
        return "csv"
    raise PairListError(f"{p}:1: not a pair list facewise recognises (LFW pairs.txt, CSV/TSV image1,image2,label, "
                        "a CFP Protocol folder); name its format with --format")


# --------------------------------------------------------------------------------------------------
# CFP
# --------------------------------------------------------------------------------------------------


def _read_index(path: Path, base: Path) -> dict[int, Path]:
    """``Pair_list_F.txt`` / ``Pair_list_P.txt``: ``index path`` per line."""
    if not path.is_file():
        raise PairListError(f"{path}: missing (a CFP Protocol folder holds Pair_list_F.txt and Pair_list_P.txt)")
    out: dict[int, Path] = {}
    for ln, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        tokens = line.split(maxsplit=1)
        if len(tokens) != 2 or not tokens[0].isdigit() or int(tokens[0]) < 1:
            raise PairListError(f"{path}:{ln}: expected 'index path' (a positive index, then the image path), "
                                f"got {line.strip()!r}")
        index = int(tokens[0])
        if index in out:
            raise PairListError(f"{path}:{ln}: index {index} is listed twice")
        out[index] = base / tokens[1].strip()
    if not out:
        raise PairListError(f"{path}: no images listed")
    return out


def _read_split(path: Path, first: dict[int, Path], second: dict[int, Path], names: tuple[str, str],
                same: bool, fold: int) -> list[Pair]:
    if not path.is_file():
        raise PairListError(f"{path}: missing (each CFP split folder holds same.txt and diff.txt)")
    pairs = []
    for ln, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        tokens = [t.strip() for t in line.split(",")]
        if len(tokens) != 2 or not all(t.isdigit() for t in tokens):
            raise PairListError(f"{path}:{ln}: expected 'i,j' (two image indexes), got {line.strip()!r}")
        i, j = int(tokens[0]), int(tokens[1])
        for index, table, name in ((i, first, names[0]), (j, second, names[1])):
            if index not in table:
                raise PairListError(f"{path}:{ln}: index {index} is not in {name} ({len(table)} images)")
        pairs.append(Pair(first[i], second[j], same, fold))
    return pairs


def parse_cfp(path: StrPath, protocol: str = "FP", root: StrPath | None = None) -> list[Pair]:
    """CFP's pairs under ``protocol`` (``FP`` frontal–profile or ``FF`` frontal–frontal); folds = its splits
    (``Split/<protocol>/01`` is fold 0). ``path``: the dataset folder, ``Protocol``, a ``Pair_list_*.txt`` or a
    ``Split/FP|FF`` folder. Image paths join ``root``, else the ``Protocol`` folder."""
    proto_dir, named = _cfp_protocol(Path(path))
    protocol = (named or protocol).upper()
    if protocol not in ("FP", "FF"):
        raise ValidationError(f"CFP protocol must be FP or FF, got {protocol!r}")
    base = Path(root) if root is not None else proto_dir
    frontal = _read_index(proto_dir / "Pair_list_F.txt", base)
    profile = frontal if protocol == "FF" else _read_index(proto_dir / "Pair_list_P.txt", base)
    second = "Pair_list_F.txt" if protocol == "FF" else "Pair_list_P.txt"
    split_dir = proto_dir / "Split" / protocol
    splits = sorted((d for d in split_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)) \
        if split_dir.is_dir() else []
    if not splits:
        raise PairListError(f"{split_dir}: no split folders (CFP has Split/{protocol}/01 .. 10)")
    pairs = []
    for fold, d in enumerate(splits):
        for name, same in (("same.txt", True), ("diff.txt", False)):
            pairs += _read_split(d / name, frontal, profile, ("Pair_list_F.txt", second), same, fold)
    if not pairs:
        raise PairListError(f"{split_dir}: the split folders list no pairs")
    logger.debug("%s: CFP %s, %d pairs in %d splits", proto_dir, protocol, len(pairs), len(splits))
    return pairs


# --------------------------------------------------------------------------------------------------
# One entry point
# --------------------------------------------------------------------------------------------------


def load_pair_list(
    path: StrPath,
    *,
    fmt: str = "auto",
    root: StrPath | None = None,
    columns: str | Columns | None = None,
    n_folds: int = 10,
    seed: int = 0,
) -> PairList:
    """Read ``path`` as ``fmt`` (one of :data:`FORMATS`) with relative paths joined to ``root`` (module docstring).

    A missing list is a :class:`~facewise.errors.NotFoundError`; a malformed one a
    :class:`~facewise.eval.pairs.PairListError` naming the file and line; an unknown format or bad ``columns``
    a :class:`~facewise.errors.ValidationError`.
    """
    if fmt not in FORMATS:
        raise ValidationError(f"--format must be one of {' | '.join(FORMATS)}, got {fmt!r}")
    cols = Columns.parse(columns) if isinstance(columns, str) else columns
    src = Path(path)
    if not src.exists():
        raise NotFoundError(f"{src}: no such pair list")
    kind = detect_format(src) if fmt == "auto" else fmt
    if cols is not None and kind not in _DELIMITER:
        raise ValidationError(f"--columns applies to CSV/TSV lists; {src} is read as {kind}")
    root_path = Path(root) if root is not None else None
    warnings: list[str] = []
    folds_by: FoldsBy = "list"
    if kind == "lfw":
        if src.is_dir():
            raise PairListError(f"{src}: is a folder, not an LFW pairs.txt")
        pairs = parse_lfw_pairs(src, root_path)
        images = src.parent / "images"
        base, root_from = (
            (root_path, "--root") if root_path is not None
            else (images, "images/ beside the list") if images.is_dir() else (src.parent, "the list's folder"))
        if len({p.fold for p in pairs}) == 1:  # a list without folds: by identity (LFW names are identities)
            pairs, folds_by, warning = fold_pairs([(p.path1, p.path2, p.same) for p in pairs], n_folds=n_folds,
                                                  seed=seed, source=src)
            warnings += [warning] if warning else []
    elif kind in _DELIMITER:
        if src.is_dir():
            raise PairListError(f"{src}: is a folder, not a pair list")
        delimiter = _DELIMITER[kind] if fmt != "auto" else None
        listed = read_delimited(src, base=root_path, delimiter=delimiter, columns=cols)
        base, root_from = (root_path, "--root") if root_path is not None else (src.parent, "the list's folder")
        if all(r.fold is not None for r in listed):
            pairs = [Pair(r.path1, r.path2, r.same, int(r.fold or 0)) for r in listed]
        else:
            pairs, folds_by, warning = fold_pairs([(r.path1, r.path2, r.same) for r in listed], n_folds=n_folds,
                                                  seed=seed, source=src)
            warnings += [warning] if warning else []
    else:
        proto_dir, named = _cfp_protocol(src)
        protocol = named or ("FF" if kind == "cfp-ff" else "FP")
        if kind != "cfp" and named is not None and kind != f"cfp-{named.lower()}":
            raise ValidationError(f"--format {kind} but {src} is CFP's {named} split")
        kind = f"cfp-{protocol.lower()}"
        pairs = parse_cfp(src, protocol, root_path)
        base, root_from = (root_path, "--root") if root_path is not None else (proto_dir, "the Protocol folder")
    return PairList(pairs, src, kind, base, root_from, folds_by, warnings)
