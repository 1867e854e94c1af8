"""Parsing of verification pair lists: LFW ``pairs.txt`` and delimited lists (facewise's ``path1,path2,same``
CSV, anyone's ``a,b,label`` CSV or TSV); :mod:`facewise.eval.pairlist` adds CFP and picks the format.

Both parsers return a list of :class:`Pair` (two image paths, whether they show the same person, and a
cross-validation fold id) and raise :class:`PairListError` (a :class:`ValueError` and a
:class:`~facewise.errors.BadInputError`: CLI exit code 3) naming the file and the line number for
malformed input; a missing file is a :class:`~facewise.errors.NotFoundError`.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np

from facewise.errors import BadInputError, NotFoundError, ValidationError

__all__ = [
    "Columns", "ListedPair", "Pair", "PairListError", "fold_pairs", "lfw_image_path", "limit_per_fold", "parse_label",
    "parse_lfw_pairs", "parse_pairs_csv", "read_delimited", "sniff_delimiter",
]

logger = logging.getLogger(__name__)

StrPath = str | PathLike[str]

_TRUE = frozenset({"1", "true", "yes", "y", "t", "same", "genuine", "match"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "different", "diff", "impostor", "mismatch"})
_HEADER_SAME = frozenset({"same", "is_same", "issame", "label", "match", "genuine"})


class PairListError(BadInputError, ValueError):
    """A pair list that cannot be parsed; the message names the file and the line. Bad input: exit code 3."""

    code = "bad_pair_list"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such pair list") from None
    except IsADirectoryError:
        raise PairListError(f"{path}: is a folder, not a pair list") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise PairListError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise PairListError(f"{path}: cannot read it ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class Pair:
    """One verification pair: two image paths, ``same`` = same person, and its fold id."""

    path1: Path
    path2: Path
    same: bool
    fold: int


def lfw_image_path(root: StrPath, name: str, number: int, ext: str = "jpg") -> Path:
    """``<root>/<name>/<name>_<NNNN>.<ext>`` with the image number zero-padded to 4 digits."""
    return Path(os.path.join(root, name, f"{name}_{number:04d}.{ext}"))


# --------------------------------------------------------------------------------------------------
# LFW pairs.txt
# --------------------------------------------------------------------------------------------------


def _image_number(token: str, where: str) -> int:
    try:
        value = int(token)
    except ValueError:
        value = 0
    if value < 1:
        raise PairListError(f"{where}: image number {token!r} is not a positive integer")
    return value


def _lfw_pair(tokens: list[str], where: str, root: Path, ext: str, fold: int) -> Pair:
    if len(tokens) == 3:
        name, a, b = tokens
        return Pair(
            lfw_image_path(root, name, _image_number(a, where), ext),
            lfw_image_path(root, name, _image_number(b, where), ext),
            True,
            fold,
        )
    if len(tokens) == 4:
        name1, a, name2, b = tokens
        return Pair(
            lfw_image_path(root, name1, _image_number(a, where), ext),
            lfw_image_path(root, name2, _image_number(b, where), ext),
            False,
            fold,
        )
    raise PairListError(
        f"{where}: expected 'name n1 n2' (same person) or 'name1 n1 name2 n2' (different people), "
        f"got {len(tokens)} fields"
    )


def parse_lfw_pairs(
    pairs_file: StrPath, image_root: StrPath | None = None, *, ext: str = "jpg"
) -> list[Pair]:
    """Parse an LFW-style pair list.

    Accepted layouts (blank lines are ignored; fields are separated by any whitespace):

    * ``pairs.txt``: a header ``"<folds> <n>"`` (``10 300``), then per fold ``n`` lines
      ``name n1 n2`` (same person) followed by ``n`` lines ``name1 n1 name2 n2`` (different people).
      Pairs get folds ``0 .. folds-1`` in file order.
    * ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: a header ``"<n>"``, then one such block (fold 0).
    * no header at all: every line is classified by its number of fields; all pairs get fold 0.

    Image paths are ``<image_root>/<name>/<name>_<NNNN>.<ext>``.  ``image_root`` defaults to
    ``<folder of pairs_file>/images`` if that folder exists, else the folder of ``pairs_file``.
    Paths are not checked for existence.
    """
    path = Path(pairs_file)
    if image_root is None:
        root = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    else:
        root = Path(image_root)
    records = [
        (lineno, line.split())
        for lineno, line in enumerate(_read_lines(path), start=1)
        if line.strip()
    ]
    if not records:
        raise PairListError(f"{path}: empty pairs file")
    head_line, head = records[0]
    if not all(tok.isdigit() for tok in head):
        pairs = [_lfw_pair(tok, f"{path}:{ln}", root, ext, 0) for ln, tok in records]
        logger.debug("%s: %d pairs, no header (single fold)", path, len(pairs))
        return pairs

    if len(head) == 2:
        n_folds, per_block = int(head[0]), int(head[1])
    elif len(head) == 1:
        n_folds, per_block = 1, int(head[0])
    else:
        raise PairListError(
            f"{path}:{head_line}: header must be '<folds> <pairs per class>' or '<pairs per class>'"
        )
    if n_folds < 1 or per_block < 1:
        raise PairListError(
            f"{path}:{head_line}: header announces {n_folds} folds of {per_block} pairs per class"
        )

    body = records[1:]
    block = 2 * per_block
    pairs = []
    for i, (ln, tokens) in enumerate(body):
        where = f"{path}:{ln}"
        fold, offset = divmod(i, block)
        if fold >= n_folds:
            raise PairListError(
                f"{where}: extra line; the header on line {head_line} announces {n_folds} fold(s) of "
                f"{per_block} same + {per_block} different pairs ({n_folds * block} lines)"
            )
        expect_same = offset < per_block
        pair = _lfw_pair(tokens, where, root, ext, fold)
        if pair.same != expect_same:
            kind = "same-person 'name n1 n2'" if expect_same else "different-people 'name1 n1 name2 n2'"
            raise PairListError(
                f"{where}: expected a {kind} line (fold {fold}, line {offset + 1} of {block} in the block), "
                f"got {len(tokens)} fields"
            )
        pairs.append(pair)
    if len(pairs) != n_folds * block:
        raise PairListError(
            f"{path}: the header on line {head_line} announces {n_folds * block} pairs "
            f"({n_folds} fold(s) x {per_block} same + {per_block} different), found {len(pairs)}"
        )
    logger.debug("%s: %d pairs in %d fold(s)", path, len(pairs), n_folds)
    return pairs


# --------------------------------------------------------------------------------------------------
# Delimited lists: facewise's path1,path2,same CSV, anyone's a,b,label CSV or TSV
# --------------------------------------------------------------------------------------------------

_LABEL_HEADERS = _HEADER_SAME | {"decision", "target", "y", "same_person", "is_same_person", "verdict", "class"}
_FOLD_HEADERS = frozenset({"fold", "split", "fold_id"})
_FILE_LIKE = re.compile(r"\.[A-Za-z][A-Za-z0-9]{1,4}$")
LABEL_WORDS = "1/0, yes/no, true/false, same/different (also y/n, t/f, genuine/impostor, match/mismatch)"


def parse_label(token: str, where: str, column: str = "same") -> bool:
    """A pair's label: ``True`` = same person. Case-insensitive; anything else names the file, line and column."""
    value = token.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PairListError(f"{where}: {column!r} must be one of {LABEL_WORDS}, got {token!r}")


def _is_label(token: str) -> bool:
    value = token.strip().lower()
    return value in _TRUE or value in _FALSE


def _looks_like_file(cell: str) -> bool:
    return bool(_FILE_LIKE.search(cell.strip()))


@dataclass(frozen=True)
class Columns:
    """Which columns of a delimited list hold the first image, the second, the label and (optionally) the fold:
    header names or 1-based numbers (``--columns file_x,file_y,Decision``)."""

    image1: str | int
    image2: str | int
    label: str | int
    fold: str | int | None = None

    @classmethod
    def parse(cls, spec: str) -> Columns:
        """``"A,B,LABEL"`` or ``"A,B,LABEL,FOLD"``; a bad spec is a :class:`ValidationError` (exit 2)."""
        parts = [p.strip() for p in spec.split(",")]
        if len(parts) not in (3, 4) or not all(parts):
            raise ValidationError(
                f"--columns: give IMAGE1,IMAGE2,LABEL[,FOLD] (header names or 1-based numbers), got {spec!r}")
        values: list[str | int] = [int(p) if p.isdigit() else p for p in parts]
        if any(isinstance(v, int) and v < 1 for v in values):
            raise ValidationError(f"--columns: column numbers start at 1, got {spec!r}")
        if len({str(v).lower() for v in values}) != len(values):
            raise ValidationError(f"--columns: a column is named twice in {spec!r}")
        return cls(values[0], values[1], values[2], values[3] if len(values) == 4 else None)

    def names(self) -> list[str | int]:
        return [self.image1, self.image2, self.label] + ([self.fold] if self.fold is not None else [])


@dataclass(frozen=True)
class _Layout:
    width: int
    index: tuple[int, int, int, int | None]  # image1, image2, label, fold
    label_name: str
    header_line: int | None


def sniff_delimiter(lines: list[str]) -> str:
    """Tab if the first non-blank line has one, else ``;`` if it has no comma but a semicolon, else comma."""
    first = next((line for line in lines if line.strip()), "")
    if "\t" in first:
        return "\t"
    if ";" in first and "," not in first:
        return ";"
    return ","


def _resolve_columns(columns: Columns, header: list[str] | None, width: int, where: str) -> tuple[int, ...]:
    lowered = [h.strip().lower() for h in header] if header is not None else None
    out = []
    for name in columns.names():
        if isinstance(name, int):
            if name > width:
                raise ValidationError(f"--columns: column {name} is past the {width} columns of {where}")
            out.append(name - 1)
        elif lowered is None or name.lower() not in lowered:
            raise ValidationError(f"--columns: no column {name!r} in the header of {where} "
                                  f"({', '.join(header) if header else 'no header row'})")
        else:
            out.append(lowered.index(name.lower()))
    return tuple(out)


def _infer_layout(path: Path, records: list[tuple[int, list[str]]], columns: Columns | None) -> _Layout:
    """Which row is a header and which columns hold what (module rules in :func:`parse_pairs_csv`)."""
    first_ln, first = records[0]
    width = len(first)
    where = f"{path}:{first_ln}"
    named = columns is not None and any(isinstance(n, str) for n in columns.names())
    cells = [c.strip().lower() for c in first]
    is_header = named or (not any(_looks_like_file(c) for c in cells) and (
        any(c in _LABEL_HEADERS for c in cells) or not any(_is_label(c) for c in cells)))
    header = [c.strip() for c in first] if is_header else None
    if columns is not None:
        idx = _resolve_columns(columns, header, width, where)
        fold = idx[3] if len(idx) == 4 else None
        label_name = header[idx[2]] if header else str(columns.label)
        return _Layout(width, (idx[0], idx[1], idx[2], fold), label_name or "label", first_ln if is_header else None)
    if width == 3:
        return _Layout(3, (0, 1, 2, None), header[2] if header and header[2] else "same",
                       first_ln if is_header else None)
    if header is None:
        raise PairListError(f"{where}: expected 3 columns 'path1,path2,same', got {width} "
                            "(a list with more columns needs a header row or --columns IMAGE1,IMAGE2,LABEL)")
    lowered = [h.lower() for h in header]
    label = next((i for i, h in enumerate(lowered) if h in _LABEL_HEADERS), None)
    fold = next((i for i, h in enumerate(lowered) if h in _FOLD_HEADERS), None)
    data = records[1][1] if len(records) > 1 else []
    files = [i for i, c in enumerate(data) if i not in (label, fold) and _looks_like_file(c)]
    if label is None or len(files) != 2:
        raise PairListError(f"{where}: {width} columns ({','.join(header)}): cannot tell which hold the two "
                            "images and the label; say it with --columns IMAGE1,IMAGE2,LABEL")
    return _Layout(width, (files[0], files[1], label, fold), header[label], first_ln)


@dataclass(frozen=True)
class ListedPair:
    """One row of a delimited list, resolved: the fold is ``None`` unless the list has a fold column."""

    path1: Path
    path2: Path
    same: bool
    fold: int | None


def read_delimited(
    list_file: StrPath, *, base: StrPath | None = None, delimiter: str | None = None, columns: Columns | None = None,
) -> list[ListedPair]:
    """The rows of a delimited pair list (rules in :func:`parse_pairs_csv`), relative paths joined to ``base``
    (default: the list's folder)."""
    path = Path(list_file)
    folder = Path(base) if base is not None else path.parent
    lines = _read_lines(path)
    reader = csv.reader(lines, delimiter=delimiter or sniff_delimiter(lines))
    records: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                records.append((reader.line_num, row))
    except csv.Error as exc:
        raise PairListError(f"{path}:{reader.line_num}: {exc}") from None
    if not records:
        raise PairListError(f"{path}: no pairs found")
    layout = _infer_layout(path, records, columns)
    i1, i2, il, ifold = layout.index
    rows = []
    for ln, row in records:
        if ln == layout.header_line:
            continue
        where = f"{path}:{ln}"
        if len(row) != layout.width:
            shape = " 'path1,path2,same'" if layout.width == 3 and layout.header_line is None else ""
            raise PairListError(f"{where}: expected {layout.width} columns{shape}, got {len(row)}")
        p1, p2 = row[i1].strip(), row[i2].strip()
        if not p1 or not p2:
            raise PairListError(f"{where}: empty image path")
        fold = None
        if ifold is not None:
            try:
                fold = int(row[ifold].strip())
            except ValueError:
                raise PairListError(f"{where}: the fold {row[ifold]!r} is not an integer") from None
        rows.append(ListedPair(folder / p1, folder / p2, parse_label(row[il], where, layout.label_name), fold))
    if not rows:
        raise PairListError(f"{path}: no pairs found (only a header)")
    return rows


# --------------------------------------------------------------------------------------------------
# Folds
# --------------------------------------------------------------------------------------------------


def _unordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def _default_identity(path: Path) -> str:
    return path.parent.name


def _assign_folds(
    keys: list[tuple[str, str]], strata: list[bool], n_folds: int, seed: int
) -> dict[tuple[str, str], int]:
    """Seeded round-robin fold assignment of the distinct keys, done separately per stratum."""
    stratum_of: dict[tuple[str, str], bool] = {}
    for key, stratum in zip(keys, strata, strict=True):
        stratum_of[key] = stratum_of.get(key, False) or stratum
    fold_of: dict[tuple[str, str], int] = {}
    rng = np.random.default_rng(seed)
    for stratum in (True, False):
        group = sorted(k for k, s in stratum_of.items() if s == stratum)
        for pos, idx in enumerate(rng.permutation(len(group))):
            fold_of[group[idx]] = pos % n_folds
    return fold_of


FoldsBy = Literal["list", "identity", "pair"]


def fold_pairs(
    rows: list[tuple[Path, Path, bool]],
    *,
    n_folds: int = 10,
    seed: int = 0,
    identity: Callable[[Path], str] | None = None,
    source: StrPath = "pair list",
) -> tuple[list[Pair], FoldsBy, str | None]:
    """Deterministic folds for pairs that come without them: by identity pair where the identities (by default
    each image's parent folder) agree with the labels and give at least ``n_folds`` keys, else by image pair.
    Returns the pairs, ``"identity"`` or ``"pair"``, and the warning logged when it fell back to pairs."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")  # a caller's bug, not bad input
    ident = identity or _default_identity
    names = [(ident(a), ident(b)) for a, b, _ in rows]
    keys = [_unordered(x, y) for x, y in names]
    strata = [k[0] == k[1] for k in keys]
    disagree = sum((x == y) != same for (x, y), (_, _, same) in zip(names, rows, strict=True))
    by: FoldsBy = "identity"
    warning = None
    if disagree or len(set(keys)) < n_folds:
        why = (f"{disagree} pair(s) whose label disagrees with their folders' names" if disagree
               else f"only {len(set(keys))} distinct identity pairs for {n_folds} folds")
        warning = f"{source}: {why}; assigning folds per image pair instead (images of one person may meet " \
                  "across folds)"
        logger.warning("%s", warning)
        keys = [_unordered(str(a), str(b)) for a, b, _ in rows]
        strata = [same for _, _, same in rows]
        by = "pair"
    fold_of = _assign_folds(keys, strata, n_folds, seed)
    pairs = [Pair(a, b, same, fold_of[k]) for (a, b, same), k in zip(rows, keys, strict=True)]
    logger.debug("%s: %d pairs, %d distinct keys, %d folds", source, len(pairs), len(fold_of), n_folds)
    return pairs, by, warning


def parse_pairs_csv(
    csv_file: StrPath,
    *,
    n_folds: int = 10,
    seed: int = 0,
    identity: Callable[[Path], str] | None = None,
    root: StrPath | None = None,
    delimiter: str | None = None,
    columns: Columns | None = None,
) -> list[Pair]:
    """Parse a delimited pair list (``path1,path2,same`` CSV, anyone's ``a,b,label`` CSV or TSV) into pairs.

    * Delimiter: ``delimiter``, else a tab if the first line has one, ``;`` if it has one and no comma, else ``,``.
    * Columns: ``columns`` (header names or 1-based numbers); else a 3-column list is ``image1, image2, label``
      in that order with or without a header row, whatever its names; a wider list needs a header row naming
      a label column (``same``, ``label``, ``decision``, ``is_same``…) and exactly two columns holding file names
      (an optional ``fold`` column gives the folds). The first row is a header when it holds no file name and
      names a label column or holds no label value.
    * Labels: 1/0, yes/no, true/false, same/different (also y/n, t/f, genuine/impostor, match/mismatch),
      case-insensitive.
    * Relative paths are joined to ``root``, else to the list's folder.  Blank rows are skipped.
    * Folds: a fold column's values where there is one; else each pair is keyed by its unordered *identity
      pair* (``identity(path)``, by default the name of the image's parent folder, as in
      ``<root>/<person>/<image>``).  The distinct keys are sorted, shuffled with
      ``numpy.random.default_rng(seed)`` and dealt round-robin into ``n_folds`` folds, separately for
      same-identity and cross-identity keys (so both kinds are spread evenly).  All pairs of one identity pair
      share a fold, and the assignment does not depend on row order.  If the identities yield fewer than
      ``n_folds`` distinct keys (e.g. all images in one folder) or disagree with a label, each unordered pair
      of paths is used as its own key instead, with a warning.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")  # a caller's bug, not bad input
    listed = read_delimited(csv_file, base=root, delimiter=delimiter, columns=columns)
    if all(r.fold is not None for r in listed):
        return [Pair(r.path1, r.path2, r.same, int(r.fold or 0)) for r in listed]
    pairs, _, _ = fold_pairs([(r.path1, r.path2, r.same) for r in listed], n_folds=n_folds, seed=seed,
                             identity=identity, source=csv_file)
    return pairs


def limit_per_fold(pairs: list[Pair], n: int | None) -> list[Pair]:
    """The first ``n`` same and ``n`` different pairs of each fold (all pairs when ``n`` is falsy)."""
    if not n:
        return list(pairs)
    seen: dict[tuple[int, bool], int] = {}
    kept = []
    for p in pairs:
        key = (p.fold, p.same)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= n:
            kept.append(p)
    return kept
