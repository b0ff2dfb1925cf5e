"""TA-Lib, with results shared between sensors that ask for the same indicator on the same bars.

``with shared(bars): ...`` opens a scope in which a TA-Lib call whose array inputs are all
columns of ``bars`` (not derived arrays, whose ids Python may reuse) is computed once and
handed to every sensor asking for it — ATR(14), say, is read by a dozen sensors. Cached
results are read-only, so a sensor that tried to modify one would fail loudly instead of
corrupting its neighbours. Outside a scope every call goes straight to TA-Lib.

``ta.RSI(close, 14)`` is exactly ``talib.RSI(close, 14)``: same function, same arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import talib

_scope: list[tuple[frozenset[int], dict[tuple, Any]]] = []


@contextmanager
def shared(*column_sets: tuple[np.ndarray, ...]) -> Iterator[None]:
    """Share indicator results computed on these columns (e.g. one or more ``Bars``)."""
    ids = frozenset(id(col) for cols in column_sets for col in cols)
    _scope.append((ids, {}))
    try:
        yield
    finally:
        _scope.pop()


def _readonly(result: Any) -> Any:
    for arr in result if isinstance(result, tuple) else (result,):
        arr.flags.writeable = False
    return result


def _caching(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if not _scope:
            return fn(*args, **kwargs)
        ids, cache = _scope[-1]
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        if not all(id(a) in ids for a in arrays):
            return fn(*args, **kwargs)
        key = (name, tuple(id(a) if isinstance(a, np.ndarray) else a for a in args), tuple(sorted(kwargs.items())))
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _readonly(fn(*args, **kwargs))
        return hit

    call.__name__ = name
    call.__doc__ = fn.__doc__
    return call


def __getattr__(name: str) -> Callable[..., Any]:
    fn = getattr(talib, name)
    wrapped = _caching(name, fn)
    globals()[name] = wrapped  # resolve once
    return wrapped
