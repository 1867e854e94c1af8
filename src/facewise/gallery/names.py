"""Name and identity rules of the gallery: what a person's name may be, which names the system reserves, what a
reference to a person (an id or a name) may be, what a collection may be called and what a person's metadata may
hold. Every store applies them through gallery/base.py."""

from __future__ import annotations

import json
import logging
import math
import numbers
import unicodedata
from typing import Any

from facewise.errors import InvalidNameError, NotFoundError, ValidationError

UNCLUSTERED = "~unclustered"  # the person unknown faces wait under until clustered
CLUSTER_PREFIX = "cluster-"
RESERVED = frozenset({"unknown"})  # what a result says when nobody matches: never a person's name
MAX_NAME = 200
MAX_ID = 2**63 - 1
MAX_METADATA_DEPTH = 8  # objects/arrays nested in a person's metadata (the metadata object itself is 1)
MAX_METADATA_BYTES = 64 * 1024  # its JSON, UTF-8 (the REST service allows less: --max-metadata-kb)

log = logging.getLogger(__name__)  # person and sample ids are positive signed 64-bit integers in every store

# bidirectional embeddings, overrides and isolates: they make a name display as another one
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
# characters that show nothing (beyond the Cf/Z*/M* categories): Hangul fillers, Braille blank, ...
_BLANK = frozenset({0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0})
# categories refused anywhere in a name: format characters (zero-width spaces and joiners, bidi marks, the Arabic
# letter mark, tag characters, ...), line/paragraph separators, private-use, unassigned code points
_REFUSED_CATEGORIES = {"Cf": "invisible format character", "Zl": "line separator", "Zp": "paragraph separator",
                       "Co": "private-use character", "Cn": "unassigned code point"}
# letters of other scripts (and Latin small capitals) that look like Latin ones: what a name is compared as when
# it is checked against the reserved names
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁԛԝһӏкмнтвАВЕКМНОРСТХІЈЅԜУ"  # Cyrillic
    "αβεικνορτυχωΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"  # Greek
    "ᴀʙᴄᴅᴇɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ"  # Latin small capitals
    "սոօ",  # Armenian
    "aeopcyxijsdqwhlkmhtbABEKMHOPCTXIJSWY"
    "aBeikvoptuxwABEZHIKMNOPTYX"
    "abcdeghijklmnoprstuvwyz"
    "uno")
_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def is_cluster_name(name: str) -> bool:
    """A name the clustering step created (``cluster-…``) or the waiting room of unknown faces."""
    return name.startswith(CLUSTER_PREFIX) or name == UNCLUSTERED


def _invisible(c: str) -> bool:
    return ord(c) in _BLANK or unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cc")


def _script(c: str) -> str | None:
    if not c.isalpha():
        return None
    word = unicodedata.name(c, "").split(" ", 1)[0]
    return word if word in _SCRIPTS else None


def skeleton(text: str) -> str:
    """``text`` folded for comparison: NFKC, look-alike Cyrillic/Greek/small-capital letters as Latin, casefold."""
    return unicodedata.normalize("NFKC", text).translate(_CONFUSABLE).casefold()


_JOINERS = (0x200C, 0x200D)  # zero-width non-joiner / joiner: part of Persian, Indic, Sinhala... spellings


def _joins(text: str, i: int) -> bool:
    """A zero-width (non-)joiner between two letters (or marks) of a script that uses it: not Latin, Cyrillic or
    Greek, where it only hides a difference between two names."""
    if not 0 < i < len(text) - 1:
        return False
    around = (text[i - 1], text[i + 1])
    return all((c.isalpha() or unicodedata.category(c) in ("Mn", "Mc")) and not c.isascii() and _script(c) is None
               for c in around)


def check_text(value: str, what: str) -> str:
    """The character rules every name in facewise follows (a person's, an API key's): NFKC-normalised; no control,
    bidi-override, invisible format (category Cf: zero-width spaces, tags, marks; a zero-width (non-)joiner only
    between two letters of a script that spells with it, as Persian and Indic names do), separator or private-use
    character; no word mixing Latin letters with Cyrillic or Greek ones (``unknоwn`` with a Cyrillic ``о``)."""
    text = unicodedata.normalize("NFKC", value)
    shown = f"{value[:40]!r}" + ("…" if len(value) > 40 else "")
    for i, c in enumerate(text):
        o = ord(c)
        if o in _JOINERS and _joins(text, i):
            continue
        if o < 32 or 0x7F <= o < 0xA0 or 0xD800 <= o <= 0xDFFF:
            raise InvalidNameError(f"{what} {shown}: control character or lone surrogate U+{o:04X}")
        if o in _BIDI:
            raise InvalidNameError(f"{what} {shown}: bidirectional override/isolate U+{o:04X} is not allowed")
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(c))
        if kind is not None:
            raise InvalidNameError(f"{what} {shown}: {kind} U+{o:04X} is not allowed")
    for word in text.split():
        scripts = {s for c in word if (s := _script(c))}
        if len(scripts) > 1:
            raise InvalidNameError(f"{what} {shown}: the word {word[:40]!r} mixes {' and '.join(sorted(scripts))} "
                                   "letters (a look-alike of another name)")
    return text


def check_name(name: object) -> str:
    """The stored form of a person's name (stripped, NFKC), or an :class:`InvalidNameError` naming what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError("a person's name must be a non-empty string")
    name = check_text(name.strip(), "person name").strip()
    shown = f"{name[:40]!r}" + ("…" if len(name) > 40 else "")
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"person name {shown}: at most {MAX_NAME} characters")
    visible = "".join(c for c in name if not _invisible(c))
    if not visible:
        raise InvalidNameError(f"person name {shown}: only invisible characters")
    if skeleton(visible) in RESERVED:
        raise InvalidNameError(f"person name {shown}: {skeleton(visible)!r} is reserved (the answer when nobody "
                               "matches)")
    if visible.isdigit():
        raise InvalidNameError(f"person name {shown}: a name made only of digits would read as a person id")
    return name


def check_collection_name(name: object) -> str:
    """A collection's name: 1..64 letters, digits, '-', '_' or '.', not starting with '.' (it names files)."""
    ok = (isinstance(name, str) and 1 <= len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name)
          and not name.startswith(".") and name.isprintable())
    if not ok:
        raise ValidationError(f"collection name {str(name)[:70]!r}: 1..64 letters, digits, '-', '_' or '.'")
    return str(name)


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
        text = unicodedata.normalize("NFKC", person.strip())  # names are stored NFKC (check_name)
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


def check_metadata(metadata: object) -> dict[str, Any]:
    """A person's metadata as stored: a JSON object of at most :data:`MAX_METADATA_DEPTH` levels and
    :data:`MAX_METADATA_BYTES` bytes, string keys, finite numbers; else a :class:`ValidationError` (422
    ``invalid_value``, exit 2) naming the rule. Walked without recursion, before anything serialises it."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationError(f"a person's metadata must be a JSON object, not {type(metadata).__name__}")
    stack: list[tuple[object, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_METADATA_DEPTH:
                raise ValidationError(f"a person's metadata may nest objects and arrays at most {MAX_METADATA_DEPTH} "
                                      "levels deep")
            if isinstance(value, dict):
                if not all(isinstance(k, str) for k in value):
                    raise ValidationError("a person's metadata must have text keys")
                stack += [(v, depth + 1) for v in value.values()]
            else:
                stack += [(v, depth + 1) for v in value]
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("a person's metadata may hold only finite numbers (no NaN or Infinity)")
        elif value is not None and not isinstance(value, str | int | float):
            raise ValidationError(f"a person's metadata holds a {type(value).__name__}, not a JSON value")
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValidationError(f"a person's metadata is {size} bytes of JSON; at most {MAX_METADATA_BYTES}")
    return metadata


def stored_metadata(raw: object) -> dict[str, Any]:
    """Metadata read back from a store (JSON text or a decoded object): as stored when it keeps the rules of
    :func:`check_metadata`; a row written before them (too deep, too large, not an object) reads as
    ``{"invalid_metadata": reason}`` instead of failing every listing of its collection."""
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else raw
        return check_metadata(value)
    except (ValidationError, ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValidationError) else f"unreadable JSON ({type(exc).__name__})"
        log.warning("a person's stored metadata breaks the metadata rules (%s); shown as invalid_metadata", reason)
        return {"invalid_metadata": reason}
