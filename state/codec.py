"""JSON-safe encoding of Casino's state: Decimal ⇄ str, Enum ⇄ name, records ⇄ dicts.

Every persisted document (snapshots, journal lines) goes through this module so that:

* money never passes through a float: ``Decimal`` is written as its exact ``str``;
* enums are written by *name* (``Timeframe.M5`` → ``"M5"``, not ``"5m"``), so renaming a wire
  value never silently changes what an old file means;
* frozen dataclass records become plain dicts of their fields, and come back through
  ``decode(cls, data)`` guided by the record's type hints (nested records, ``X | None``,
  ``tuple[X, ...]``, ``list[X]``, ``dict[K, V]`` are followed);
* records whose type is not known in advance are written *tagged*
  (``{"type": "OrderRequest", "data": {...}}``) and read back through a registry that holds
  every record of ``core.types`` and ``core.events`` plus whatever callers register.

``SCHEMA_VERSION`` is the version of the persisted layout; readers refuse a newer one.
orjson does the byte work (it is several times faster than the standard library).
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

import orjson

import core.events
import core.types
from core.errors import StateError

SCHEMA_VERSION = 1
"""Version of the on-disk layout of snapshots and journal lines written by this build."""

T = TypeVar("T")

_DUMP_OPTIONS = orjson.OPT_SORT_KEYS


# ------------------------------------------------------------------------------ encode


class Encoded:
    """A part of a document encoded once, held as its JSON bytes: ``encode`` returns it as is.

    For a large section that is persisted again and again unchanged (the engine reuses its
    tracker section between snapshots), so it is walked once instead of at every save. It is
    kept serialized (an ``orjson.Fragment`` of ``dumps_plain(encode(value))``, which orjson
    writes verbatim) rather than as the encoded tree: the engine holds the tracker's section
    for the whole session, and as a tree it was a second copy of every open vote and outcome
    in small Python objects (~6 MB with 50 symbols, rebuilt every few seconds, bench/soak.py);
    as bytes it is one block, about half the size, and the bytes a snapshot writes are the same.
    """

    __slots__ = ("data",)

    def __init__(self, value: Any) -> None:
        self.data = orjson.Fragment(dumps_plain(encode(value)))

    @classmethod
    def of_json(cls, data: bytes) -> Encoded:
        """A section its owner serialised itself, exactly as ``dumps_plain(encode(value))`` would
        (``SensorTracker.to_json``): taken as is."""
        section = cls.__new__(cls)
        section.data = orjson.Fragment(data)
        return section


def encode(value: Any) -> Any:
    """Turn ``value`` into JSON-safe data (dict/list/str/int/float/bool/None).

    Dataclass instances become dicts of their fields (untagged: decode them with
    ``decode(cls, data)``); use ``encode_tagged`` when the type must travel with the data.
    """
    if value is None or isinstance(value, (bool, int, str)) and not isinstance(value, Enum):
        return value
    if type(value) is Encoded:
        return value.data
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise StateError(f"refusing to persist a non-finite Decimal: {value}")
        return str(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise StateError(f"refusing to persist a non-finite float: {value}")
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_encode_key(k): _encode_item(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_item(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((encode(v) for v in value), key=orjson.dumps)
    raise StateError(f"cannot encode {type(value).__name__} for persistence")


_PLAIN = frozenset({str, int, bool, type(None)})  # exact types: an Enum subclassing str/int is not plain


def _encode_item(value: Any) -> Any:
    """``encode`` for a container's item, without a call for the plain scalars that make up most
    of a snapshot (the tracker's votes and outcomes): same result, a fraction of the time."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float and value - value == 0.0:  # finite (inf - inf and NaN - NaN are NaN)
        return value
    if kind is list:
        return [_encode_item(v) for v in value]
    return encode(value)


def _encode_key(key: Any) -> str:
    if isinstance(key, str) and not isinstance(key, Enum):
        return key
    if isinstance(key, Enum):
        return key.name
    if isinstance(key, (int, Decimal)) and not isinstance(key, bool):
        return str(key)
    raise StateError(f"mapping keys must be str, int, Decimal or Enum, got {type(key).__name__}")


def encode_tagged(record: Any) -> dict[str, Any]:
    """Encode a registered record together with its type name."""
    name = type(record).__name__
    if _REGISTRY.get(name) is not type(record):
        raise StateError(f"{name} is not a registered record type; call codec.register first")
    return {"type": name, "data": encode(record)}


def decode_tagged(data: Any) -> Any:
    """Inverse of ``encode_tagged``."""
    if not isinstance(data, dict) or set(data) != {"type", "data"}:
        raise StateError(f"not a tagged record: {_preview(data)}")
    cls = _REGISTRY.get(data["type"])
    if cls is None:
        raise StateError(f"unknown record type {data['type']!r}")
    return decode(cls, data["data"])


# ------------------------------------------------------------------------------ decode


def decode(tp: Any, data: Any, path: str = "$") -> Any:
    """Rebuild a value of type ``tp`` from JSON-safe ``data``; errors name the JSON path."""
    try:
        return _decode(tp, data, path)
    except StateError:
        raise
    except (TypeError, ValueError, KeyError, InvalidOperation) as exc:
        raise StateError(f"{path}: cannot decode {_preview(data)} as {_type_name(tp)}: {exc}") from exc


def _decode(tp: Any, data: Any, path: str) -> Any:
    if tp is Any:
        return data
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, data, path)
            except (StateError, TypeError, ValueError, KeyError, InvalidOperation) as exc:
                errors.append(str(exc))
        raise StateError(f"{path}: {_preview(data)} matches none of {_type_name(tp)} ({'; '.join(errors)})")
    if origin in (tuple, list, set, frozenset):
        if not isinstance(data, list):
            raise StateError(f"{path}: expected a list for {_type_name(tp)}, got {_preview(data)}")
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(data):
                raise StateError(f"{path}: expected {len(args)} items, got {len(data)}")
            return tuple(_decode(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, data)))
        item = args[0] if args else Any
        items = [_decode(item, v, f"{path}[{i}]") for i, v in enumerate(data)]
        return origin(items)
    if origin is dict or tp is dict:
        if not isinstance(data, dict):
            raise StateError(f"{path}: expected an object, got {_preview(data)}")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_decode_key(kt, k, path): _decode(vt, v, f"{path}.{k}") for k, v in data.items()}
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            if not isinstance(data, str) or data not in tp.__members__:
                raise StateError(f"{path}: {_preview(data)} is not a member of {tp.__name__}")
            return tp[data]
        if tp is Decimal:
            if not isinstance(data, str):
                raise StateError(f"{path}: Decimal must be stored as a string, got {_preview(data)}")
            value = Decimal(data)
            if not value.is_finite():
                raise StateError(f"{path}: non-finite Decimal {data!r}")
            return value
        if tp is bool:
            if not isinstance(data, bool):
                raise StateError(f"{path}: expected a boolean, got {_preview(data)}")
            return data
        if tp is int:
            if not isinstance(data, int) or isinstance(data, bool):
                raise StateError(f"{path}: expected an integer, got {_preview(data)}")
            return data
        if tp is float:
            if not isinstance(data, (int, float)) or isinstance(data, bool):
                raise StateError(f"{path}: expected a number, got {_preview(data)}")
            return float(data)
        if tp is str:
            if not isinstance(data, str):
                raise StateError(f"{path}: expected a string, got {_preview(data)}")
            return data
        if dataclasses.is_dataclass(tp):
            return _decode_record(tp, data, path)
    raise StateError(f"{path}: unsupported type {_type_name(tp)}")


def _decode_key(tp: Any, key: str, path: str) -> Any:
    if tp in (Any, str):
        return key
    if tp is int:
        return int(key)
    if tp is Decimal:
        return Decimal(key)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _decode(tp, key, path)
    raise StateError(f"{path}: unsupported mapping key type {_type_name(tp)}")


def _decode_record(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, dict):
        raise StateError(f"{path}: expected an object for {cls.__name__}, got {_preview(data)}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise StateError(f"{path}: unknown fields for {cls.__name__}: {sorted(unknown)}")
    kwargs = {name: _decode(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise StateError(f"{path}: {cls.__name__}: {exc}") from exc


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        module = sys.modules.get(cls.__module__)
        hints = typing.get_type_hints(cls, vars(module) if module else None)
        _HINTS[cls] = hints
    return hints


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type] = {}


def register(cls: type[T]) -> type[T]:
    """Make a dataclass record usable with ``encode_tagged``; usable as a decorator."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    existing = _REGISTRY.get(cls.__name__)
    if existing is not None and existing is not cls:
        raise TypeError(f"another record is already registered as {cls.__name__}")
    _REGISTRY[cls.__name__] = cls
    return cls


def registered(name: str) -> type | None:
    """The record class registered under ``name`` (None when unknown)."""
    return _REGISTRY.get(name)


for _module in (core.types, core.events):
    for _obj in vars(_module).values():
        if isinstance(_obj, type) and dataclasses.is_dataclass(_obj) and _obj.__module__ == _module.__name__:
            register(_obj)


# ------------------------------------------------------------------------------ bytes


def dumps(document: Any) -> bytes:
    """Encode and serialize ``document`` (keys sorted, so equal documents give equal bytes)."""
    return orjson.dumps(encode(document), option=_DUMP_OPTIONS)


def dumps_plain(data: Any) -> bytes:
    """Serialize data that is already JSON-safe (no encoding pass)."""
    return orjson.dumps(data, option=_DUMP_OPTIONS)


def loads(raw: bytes | str) -> Any:
    """Parse JSON bytes; raises StateError (not orjson's error) on malformed input."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"malformed JSON: {exc}") from exc


def check_schema_version(version: Any, what: str) -> int:
    """Validate a stored schema_version: newer than this build is refused with a clear message."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{what}: invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{what} was written with schema_version {version}, newer than this build's "
            f"{SCHEMA_VERSION}: refusing to read it (upgrade Casino, or move the file away "
            "to start without it)"
        )
    return version


# ------------------------------------------------------------------------------ helpers


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _preview(data: Any, limit: int = 80) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 3] + "..."

