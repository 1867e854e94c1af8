"""REST models made from the library's records, so each thing is described once.

A record (a dataclass of :mod:`facewise.types`, :class:`~facewise.gallery.store.CollectionInfo`, a video track)
already says which fields it has and their types, and its ``to_dict()`` is the one mapping to JSON (the CLI's
``--json`` prints it). :func:`from_record` turns such a class into a pydantic response model: the fields are the
record's (renamed, left out or retyped only where the wire says so, each told there), the values are the record's
``to_dict()`` (:class:`RecordModel` validates a record instance through it). A route returns the record, or
``Model.of(record, **more)``; the REST answer, the CLI's JSON and the schema cannot drift apart
(``tests/test_service_records.py`` checks every record model against its record's ``to_dict()``).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
from pydantic import BaseModel, ConfigDict, create_model, model_validator

from facewise.types import Box, Quality


class Model(BaseModel):
    """Every REST model: extra fields are allowed (a field added later is not dropped)."""

    model_config = ConfigDict(extra="allow", from_attributes=True)


class RecordModel(Model):
    """A response model made from a record class (:func:`from_record`): a record instance is validated through
    its own ``to_dict()``; a dict (an answer already in JSON form) as it is."""

    __record__: ClassVar[type | None] = None
    __exclude__: ClassVar[frozenset[str]] = frozenset()  # the record's fields never sent

    @model_validator(mode="before")
    @classmethod
    def _from_record(cls, data: Any) -> Any:
        record: Any = cls.__record__
        if record is not None and isinstance(data, record):
            data = data.to_dict()
        if isinstance(data, dict) and cls.__exclude__ & data.keys():
            data = {k: v for k, v in data.items() if k not in cls.__exclude__}
        return data

    @classmethod
    def of(cls, record: Any, **more: Any) -> Self:
        """The model of ``record`` with the fields a route adds (``more``: records, models or JSON values)."""
        return cls.model_validate({**record.to_dict(), **more})


#: record class → its model, filled by :func:`from_record` (a record field of a record type gets that model)
RECORD_MODELS: dict[type, type[RecordModel]] = {}

#: library types that travel as plain JSON: a box as [x1, y1, x2, y2], landmarks as rows, quality as its score
WIRE_TYPES: dict[Any, Any] = {Box: list[float], np.ndarray: list[list[float]], Quality: float}


def wire_type(tp: Any) -> Any:
    """The JSON type of a record field's type (records by their models, containers and optionals through)."""
    if tp in RECORD_MODELS:
        return RECORD_MODELS[tp]
    if tp in WIRE_TYPES:
        return WIRE_TYPES[tp]
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(wire_type(a) for a in args)]  # noqa: UP007 - built from a tuple of types
    if origin is list:
        return list[wire_type(args[0])]  # type: ignore[misc]
    return tp


M = TypeVar("M", bound=RecordModel)


def from_record(record: type, *, flatten: str | None = None, exclude: tuple[str, ...] = (),
                rename: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> Callable[[type[M]], type[M]]:
    """Class decorator: the response model of the dataclass ``record``.

    The decorated class declares only what the wire adds to the record: a field it declares (a description, a
    JSON type that differs, e.g. "unknown" for no name) is kept as declared; every other field of the record is
    added in order, under the name ``to_dict()`` gives it: ``rename`` (record field → wire name), ``exclude``
    (never sent), ``flatten`` (a record field whose own fields are sent at the top level: the decorated class
    then derives from that field's model). ``extra`` names the declared fields that are not the record's (what
    ``to_dict()`` derives or a route adds): any other declared name must be a field of the record."""

    def wrap(cls: type[M]) -> type[M]:
        rename_ = rename or {}
        hints = get_type_hints(record)
        names = [rename_.get(f.name, f.name) for f in dataclasses.fields(record)
                 if f.name not in exclude and f.name != flatten]
        inherited = {n for b in cls.__mro__[1:] if issubclass(b, BaseModel) for n in b.model_fields}
        stray = set(cls.model_fields) - set(names) - set(extra) - inherited
        if stray:
            raise TypeError(f"{cls.__name__} declares {sorted(stray)}, which {record.__name__} does not have")
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(record):
            wire = rename_.get(f.name, f.name)
            if wire in names and wire not in cls.model_fields:
                optional = f.default is not dataclasses.MISSING  # to_dict() may leave it out (a video track's
                fields[wire] = (wire_type(hints[f.name]), f.default if optional else ...)  # expression)
        model = create_model(cls.__name__, __base__=cls, __doc__=cls.__doc__, __module__=cls.__module__, **fields)
        model.__record__ = record
        model.__exclude__ = frozenset(exclude)
        RECORD_MODELS.setdefault(record, model)
        return model

    return wrap
