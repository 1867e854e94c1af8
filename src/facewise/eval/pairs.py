"""Parsing of verification pair lists: LFW ``pairs.txt`` and a generic ``path1,path2,same`` CSV.

Both parsers return a list of :class:`Pair` (two image paths, whether they show the same person, and a
cross-validation fold id) and raise :class:`PairListError` (a :class:`ValueError` and a
:class:`~facewise.errors.BadInputError`: CLI exit code 3) naming the file and the line number for
malformed input; a missing file is a :class:`~facewise.errors.NotFoundError`.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from facewise.errors import BadInputError, NotFoundError

__all__ = ["Pair", "PairListError", "lfw_image_path", "parse_lfw_pairs", "parse_pairs_csv"]

logger = logging.getLogger(__name__)

StrPath = str | PathLike[str]

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f"})
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
# Generic CSV
# --------------------------------------------------------------------------------------------------


def _parse_bool(token: str, where: str) -> bool:
    value = token.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PairListError(f"{where}: 'same' must be one of 1/0/true/false/yes/no, got {token!r}")


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


def parse_pairs_csv(
    csv_file: StrPath,
    *,
    n_folds: int = 10,
    seed: int = 0,
    identity: Callable[[Path], str] | None = None,
) -> list[Pair]:
    """Parse a ``path1,path2,same`` CSV into pairs with deterministic folds.

    * An optional header row is recognised by its third column being named ``same`` (or ``is_same``,
      ``issame``, ``label``, ``match``, ``genuine``); columns are always positional.
    * ``same`` accepts ``1/0``, ``true/false``, ``yes/no`` (also ``t/f``, ``y/n``), case-insensitive.
    * Relative paths are taken relative to the CSV's folder.  Blank rows are skipped.
    * Folds: each pair is keyed by its unordered *identity pair* (``identity(path)``, by default the
      name of the image's parent folder, as in ``<root>/<person>/<image>``).  The distinct keys are
      sorted, shuffled with ``numpy.random.default_rng(seed)`` and dealt round-robin into ``n_folds``
      folds, separately for same-identity and cross-identity keys (so both kinds are spread evenly).
      All pairs of one identity pair share a fold, and the assignment does not depend on row order.
      If the identities yield fewer than ``n_folds`` distinct keys (e.g. all images in one folder),
      each unordered pair of paths is used as its own key instead, with a warning.
    """
    path = Path(csv_file)
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")  # a caller's bug, not bad input
    base = path.parent
    rows: list[tuple[Path, Path, bool]] = []
    reader = csv.reader(_read_lines(path))
    first = True
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if first:
                first = False
                if len(row) == 3 and row[2].strip().lower() in _HEADER_SAME:
                    continue
            if len(row) != 3:
                raise PairListError(f"{where}: expected 3 columns 'path1,path2,same', got {len(row)}")
            p1, p2 = row[0].strip(), row[1].strip()
            if not p1 or not p2:
                raise PairListError(f"{where}: empty image path")
            rows.append((base / p1, base / p2, _parse_bool(row[2], where)))
    except csv.Error as exc:
        raise PairListError(f"{path}:{reader.line_num}: {exc}") from None
    if not rows:
        raise PairListError(f"{path}: no pairs found")

    ident = identity or _default_identity

    keys = [_unordered(ident(a), ident(b)) for a, b, _ in rows]
    strata = [k[0] == k[1] for k in keys]
    if len(set(keys)) < n_folds:
        logger.warning(
            "%s: only %d distinct identity pairs for %d folds; assigning folds per image pair instead",
            path,
            len(set(keys)),
            n_folds,
        )
        keys = [_unordered(str(a), str(b)) for a, b, _ in rows]
        strata = [same for _, _, same in rows]
    fold_of = _assign_folds(keys, strata, n_folds, seed)
    pairs = [Pair(a, b, same, fold_of[k]) for (a, b, same), k in zip(rows, keys, strict=True)]
    logger.debug("%s: %d pairs, %d distinct keys, %d folds", path, len(pairs), len(fold_of), n_folds)
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
