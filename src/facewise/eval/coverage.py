"""No number without data: which images of a pair list could not be read, and whether the rest may be reported.

A pair with an unreadable image (missing, not an image, truncated…) is not measured: it leaves the headline
numbers, and the report lists it. More unreadable images than ``allow_missing`` (a share of the list's distinct
images; default 0: any unreadable image) is a :class:`MissingImagesError` (exit 3, REST 422) and no accuracy at
all, and so is a run where no pair is left. Images where no face was found are counted and named too; they are
scored as ``no_face`` says (``center``: the centre prior; ``reject``: -1), as before.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from facewise.errors import BadInputError, ValidationError

if TYPE_CHECKING:
    from facewise.eval.pairlist import PairList

__all__ = ["MissingImagesError", "check_files", "check_unreadable", "format_share", "missing_files", "parse_allowance"]

NAMED = 5  # image names an error message shows
LISTED = 100  # image names a report lists (with the count of the rest)


class MissingImagesError(BadInputError):
    """Too many images of a pair list cannot be read (or none of its pairs can be measured): no number is
    reported. The message says how many, names some, and says where relative paths were looked for."""

    code = "missing_images"


def parse_allowance(value: str | float | None) -> float:
    """``--allow-missing``: ``"5%"``, ``"5"`` (per cent) or a float share in [0, 1] → a share in [0, 1]."""
    if value is None:
        return 0.0
    if isinstance(value, float | int) and not isinstance(value, bool):
        share = float(value)
    else:
        text = str(value).strip()
        try:
            share = float(text.removesuffix("%").strip()) / 100.0
        except ValueError:
            share = math.nan
    if not math.isfinite(share) or not 0.0 <= share <= 1.0:
        raise ValidationError(f"--allow-missing must be a share from 0% to 100% (like 5%), got {value!r}")
    return share


def format_share(share: float) -> str:
    return f"{100 * share:.3g}%"


def missing_files(paths: Sequence[str]) -> list[str]:
    """The paths that are not files (checked before anything is loaded)."""
    return [p for p in paths if not os.path.isfile(p)]


def named(paths: Sequence[str], limit: int) -> list[str]:
    return list(paths[:limit]) + ([f"… and {len(paths) - limit} more"] if len(paths) > limit else [])


def where_paths_point(plist: PairList | None) -> str:
    if plist is None:
        return ""
    hint = "" if plist.root_from == "--root" else ", give --root to change it"
    return f"; relative paths were joined to {plist.root} ({plist.root_from}{hint})"


def check_unreadable(bad: Sequence[str], total: int, allowance: float, plist: PairList | None = None,
                     what: str = "cannot be read") -> None:
    """Raise :class:`MissingImagesError` when ``bad`` is more than ``allowance`` of ``total`` distinct images."""
    if not bad or len(bad) <= allowance * total:
        return
    share = len(bad) / max(total, 1)
    source = f"{plist.source}: " if plist is not None else ""
    raise MissingImagesError(
        f"{source}{len(bad)} of {total} images ({format_share(share)}) {what}, more than --allow-missing allows "
        f"({format_share(allowance)}): {', '.join(named(list(bad), NAMED))}{where_paths_point(plist)}")


def check_files(plist: PairList, allowance: float = 0.0) -> None:
    """Before anything is loaded: more missing files than ``allowance`` is a :class:`MissingImagesError`."""
    paths = plist.images()
    check_unreadable(missing_files(paths), len(paths), allowance, plist, "are not files")


def coverage(listed: int, measured: int, images: int, unreadable: Sequence[str], no_face: Sequence[str],
             allowance: float, no_face_policy: str) -> dict[str, Any]:
    """The report's ``coverage`` block: what the headline numbers cover and what they leave out, by name."""
    return {
        "listed_pairs": listed, "measured_pairs": measured, "excluded_pairs": listed - measured,
        "images": images, "unreadable_images": len(unreadable), "unreadable": named(list(unreadable), LISTED),
        "no_face_images": len(no_face), "no_face": named(list(no_face), LISTED),
        "no_face_scored_as": "centre-prior alignment" if no_face_policy == "center" else "score -1 (reject)",
        "allow_missing": format_share(allowance),
    }
