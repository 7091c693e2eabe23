"""Views and events to JSON and back, for the daemon's socket.

The Runtime's public face is frozen dataclasses (engine/api.py) and typed events
(engine/events.py); this module turns them into plain JSON values and rebuilds the same
types from them, guided by each dataclass's type hints. One encoder and one decoder per type
is built once (a snapshot of a 10,000-task execution is encoded on every push). It knows
nothing about sockets.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from l3tui.engine import api
from l3tui.engine import events as ev

Codec = Callable[[Any], Any]
_SCALARS = (str, int, float, bool, type(None))


def to_wire(value: Any) -> Any:
    """A JSON-able copy of a view, an event, or anything made of them."""
    return _encoder(typing.cast(Any, type(value)))(value)


def from_wire(tp: Any, value: Any) -> Any:
    """`value` (as `to_wire` made it) rebuilt as type `tp`."""
    codec = _decoder(tp)
    return value if codec is None else codec(value)


def event_from_wire(data: dict[str, Any]) -> ev.Event:
    """The event `data` describes; ValueError when its kind is unknown or it does not fit."""
    kind = data.get("kind") if isinstance(data, dict) else None
    cls = ev.EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    try:
        result = from_wire(cls, data)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"malformed {kind} event: {exc}") from None
    assert isinstance(result, ev.Event)
    return result


def _generic(value: Any) -> Any:
    """Encode a value whose type was not declared precisely (dict[str, Any], Any)."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_generic(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _generic(item) for key, item in value.items()}
    return _encoder(typing.cast(Any, type(value)))(value)


@cache
def _encoder(cls: type) -> Codec:
    if cls in _SCALARS:
        return _identity
    if issubclass(cls, enum.Enum):
        return _enum_value
    if not dataclasses.is_dataclass(cls):
        return _generic if cls in (list, tuple, dict) else str
    hints = _hints(cls)
    fields = [(name, _field_encoder(hints[name])) for name in _field_names(cls)]
    kind = getattr(cls, "kind", None) if issubclass(cls, ev.Event) else None

    def encode(value: Any) -> dict[str, Any]:
        out = {name: (raw if (raw := getattr(value, name)) is None or enc is None else enc(raw))
               for name, enc in fields}  # fmt: skip
        if kind is not None:
            out["kind"] = kind
        return out

    return encode


def _field_encoder(tp: Any) -> Codec | None:
    """None when values of `tp` are JSON as they are (the common, fast case)."""
    if _is_plain(tp):
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _field_encoder(options[0]) if len(options) == 1 else _generic
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _field_encoder(args[0])
            return list if inner is None else (lambda v: [inner(item) for item in v])
        return _generic
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, enum.Enum)):
        return _encoder(tp)
    return _generic


@cache
def _decoder(tp: Any) -> Codec | None:
    """None when the JSON value already is the value (str, int, dict[str, Any], ...)."""
    if _is_plain(tp) and tp is not float:
        return None
    if tp is float:
        return _as_float
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) != 1:
            return None
        inner = _decoder(options[0])
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return tuple if item is None else (lambda v: tuple(item(x) for x in v))
        parts = [_decoder(a) for a in args]
        return lambda v: tuple(x if p is None else p(x) for p, x in zip(parts, v, strict=False))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        fields = [(name, _decoder(hints[name])) for name in _field_names(tp)]

        def decode(value: dict[str, Any]) -> Any:
            kwargs = {}
            for name, dec in fields:
                if name in value:
                    raw = value[name]
                    kwargs[name] = raw if dec is None or raw is None else dec(raw)
            return tp(**kwargs)

        return decode
    return None


def _is_plain(tp: Any) -> bool:
    if tp in _SCALARS or tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is dict or origin is list:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(tp))
    return False


def _identity(value: Any) -> Any:
    return value


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _as_float(value: Any) -> float:
    return float(value)


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


@cache
def _hints(cls: type) -> dict[str, Any]:
    namespace = {**vars(api), **vars(ev)}
    return typing.get_type_hints(cls, globalns=namespace)
