"""Name and identity rules of the gallery: what a person's name may be, which names the system reserves, and
what a reference to a person (an id or a name) may be. Every store applies them through gallery/base.py."""

from __future__ import annotations

import numbers
import unicodedata

from facewise.errors import InvalidNameError, NotFoundError

UNCLUSTERED = "~unclustered"  # the person unknown faces wait under until clustered
CLUSTER_PREFIX = "cluster-"
RESERVED = frozenset({"unknown"})  # what a result says when nobody matches: never a person's name
MAX_NAME = 200
MAX_ID = 2**63 - 1  # person and sample ids are positive signed 64-bit integers in every store

# bidirectional embeddings, overrides and isolates: they make a name display as another one
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
# characters that show nothing (beyond the Cf/Z*/M* categories): Hangul fillers, Braille blank, ...
_BLANK = frozenset({0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0})


def is_cluster_name(name: str) -> bool:
    """A name the clustering step created (``cluster-…``) or the waiting room of unknown faces."""
    return name.startswith(CLUSTER_PREFIX) or name == UNCLUSTERED


def _invisible(c: str) -> bool:
    return ord(c) in _BLANK or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cc")


def check_name(name: object) -> str:
    """The stored form of a person's name (stripped), or an :class:`InvalidNameError` naming what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError("a person's name must be a non-empty string")
    name = name.strip()
    shown = f"{name[:40]!r}" + ("…" if len(name) > 40 else "")
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"person name {shown}: at most {MAX_NAME} characters")
    for c in name:
        o = ord(c)
        if o < 32 or 0x7F <= o < 0xA0 or 0xD800 <= o <= 0xDFFF:
            raise InvalidNameError(f"person name {shown}: control character or lone surrogate U+{o:04X}")
        if o in _BIDI:
            raise InvalidNameError(f"person name {shown}: bidirectional override/isolate U+{o:04X} is not allowed")
    visible = unicodedata.normalize("NFKC", "".join(c for c in name if not _invisible(c)))
    if not visible:
        raise InvalidNameError(f"person name {shown}: only invisible characters")
    if visible.casefold() in RESERVED:
        raise InvalidNameError(f"person name {shown}: {visible.casefold()!r} is reserved (the answer when nobody "
                               "matches)")
    if visible.isdigit():
        raise InvalidNameError(f"person name {shown}: a name made only of digits would read as a person id")
    return name


def check_id(value: object, what: str = "person") -> int:
    """A stored id (1..2**63-1), or :class:`NotFoundError`: ``True``, 0, negatives, huge numbers and non-integers
    name nothing, the same way in every store."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 1 <= int(value) <= MAX_ID:
        return int(value)
    shown = repr(value)[:40]
    raise NotFoundError(f"{what} {shown} does not exist: {what} ids are integers 1..{MAX_ID}")


def person_ref(person: object) -> int | str:
    """A reference to a person, as every store resolves it: an id, or a name (digits mean an id)."""
    if isinstance(person, str):
        text = person.strip()
        if text.isascii() and text.isdigit():
            return check_id(int(text))
        if not text:
            raise NotFoundError("person '' does not exist: name a person by id or name")
        return text
    return check_id(person)


def person_target(person: object) -> int | str:
    """Where samples go: an existing person's id, or a (valid) name, created when missing."""
    if isinstance(person, str):
        text = person.strip()
        return check_id(int(text)) if text.isascii() and text.isdigit() else check_name(person)
    return check_id(person)
