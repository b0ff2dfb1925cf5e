"""TA-Lib, memoised within one evaluation so sensors sharing an indicator compute it once.

Sensors call ``ta.EMA(b.close, 26)`` exactly as they would call ``talib.EMA``. Outside a
``shared()`` scope that *is* the TA-Lib call. Inside one (a worker evaluating every sensor of
one symbol-bar, or batch mode over one history) the first call computes and stores the result
and later identical calls — same function, same input arrays, same parameters — get the
stored arrays: a 1m bar runs ~60 distinct TA-Lib calls instead of ~90, and TA-Lib's fixed
per-call cost (a few µs, more than the math on a 1,000-bar window) is what a live bar spends.

Arguments are keyed by identity (``id``), so sharing happens only when sensors pass the very
same objects (the same window's arrays; parameters are interned by ``core.sensor_plan`` so equal
values are the same object); each entry keeps its arguments alive so an id cannot be reused for
a different object while the scope lasts. Stored outputs are made read-only: a sensor writing
into an indicator it shares with others would raise instead of corrupting them.

Stacked symbols (a burst): an argument of shape (W, S) — time on axis 0, one column per
symbol, the transpose of a C-contiguous (S, W) matrix — is computed as ONE TA-Lib call over
the flattened (S, W) buffer (``x.T.ravel()`` is a view) and handed back as (W, S) again. Each
symbol's segment then follows the previous symbol's: a value reading only its own segment
(rolling windows) is unaffected; a recursive indicator (EMA, Wilder, SAR…) starts the segment
from the previous symbol's state instead of its own seed, a start-dependence the window rule
(``sensors.base``) already bounds — relative to the price scale, which is why the caller
scales each symbol to a common one (``core.sensor_plan.evaluate_burst``).

Memory stays bounded: once the stored outputs exceed ``MEMO_BYTES`` (batch mode over millions
of bars: ~8 MB per indicator per million bars) the memo is emptied and starts again — later
calls recompute, nothing else changes. A live window never comes close (~0.5 MB per bar).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import talib

MEMO_BYTES = 256 * 1024 * 1024
_memo: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]] | None = None
_memo_bytes = 0


class shared:  # noqa: N801 - used like a function: ``with ta.shared(): ...``
    """Memoise TA-Lib calls until the scope ends (nested scopes share the outer memo).

    A class rather than a generator context manager: it is entered once per sensor evaluation."""

    __slots__ = ("_outer",)

    def __enter__(self) -> None:
        global _memo, _memo_bytes
        self._outer = _memo
        if self._outer is None:
            _memo, _memo_bytes = {}, 0

    def __exit__(self, *_: object) -> None:
        global _memo, _memo_bytes
        if self._outer is None:
            _memo, _memo_bytes = None, 0


def unwrapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """TA-Lib's compiled function under the wrapper the ``talib`` package adds when pandas or
    polars is installed: that wrapper only converts Series (sensors pass numpy arrays) and
    costs more than the math on a live window. Same function, same results."""
    return getattr(fn, "__wrapped__", fn)


# TA-Lib functions that keep a running sum of squares (variance = mean of x² − mean²): its
# rounding residue grows with every value it has passed through, and in a flattened burst that
# includes every earlier symbol's segment, enough to move a Bollinger strength or a z-score by
# ~1e-9 on real data (bench/parity_audit.py). Those run symbol by symbol, as a live window does.
_OWN_SEGMENT = frozenset({"BBANDS", "STDDEV", "VAR"})


def _per_symbol(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn`` over (W, S) arguments, one call per symbol's column; outputs stacked (W, S) again."""
    symbols = args[0].shape[1]
    rows = [np.ascontiguousarray(a.T) if a.__class__ is np.ndarray and a.ndim == 2 else None for a in args]
    outs = [fn(*(r[s] if r is not None else a for r, a in zip(rows, args, strict=True)), **kwargs)
            for s in range(symbols)]
    if outs[0].__class__ is np.ndarray:
        return np.stack(outs).T
    return tuple(np.stack([o[k] for o in outs]).T for k in range(len(outs[0])))


def _stacked(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn`` over (W, S) arguments as one call on the flattened (S, W) buffers (see above)."""
    if fn.__name__ in _OWN_SEGMENT:
        return _per_symbol(fn, args, kwargs)
    steps, symbols = args[0].shape
    flat = [np.ascontiguousarray(a.T).ravel() if a.__class__ is np.ndarray and a.ndim == 2 else a for a in args]
    out = fn(*flat, **kwargs)
    if out.__class__ is np.ndarray:
        return out.reshape(symbols, steps).T
    return tuple(x.reshape(symbols, steps).T for x in out)


def direct(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    """A TA-Lib function that also takes stacked (W, S) arguments, without the memo (for
    indicators no two sensors share, such as the candlestick patterns)."""
    fn = unwrapped(wrapped)

    def run(*args: Any, **kwargs: Any) -> Any:
        return _stacked(fn, args, kwargs) if args[0].ndim == 2 else fn(*args, **kwargs)

    return run


def _memoised(name: str, wrapped: Callable[..., Any]) -> Callable[..., Any]:
    fn = unwrapped(wrapped)
    ndarray = np.ndarray

    def call(*args: Any, **kwargs: Any) -> Any:
        global _memo_bytes
        memo = _memo
        if memo is None:
            return _stacked(fn, args, kwargs) if args[0].ndim == 2 else fn(*args, **kwargs)
        key = (name, *map(id, args), *kwargs.items())
        hit = memo.get(key)
        if hit is not None:
            return hit[0]
        # (inlined rather than through ``direct``: one Python frame less on a live bar's ~60 calls)
        out = _stacked(fn, args, kwargs) if args[0].ndim == 2 else fn(*args, **kwargs)
        if out.__class__ is ndarray:
            out.flags.writeable = False
            size = out.nbytes
        else:  # several outputs (MACD, BBANDS, STOCH…)
            size = 0
            for x in out:
                x.flags.writeable = False
                size += x.nbytes
        _memo_bytes += size
        if _memo_bytes > MEMO_BYTES:  # start afresh: forgotten entries are recomputed when asked again
            memo.clear()
            _memo_bytes = size
        memo[key] = (out, args)
        return out

    call.__name__ = call.__qualname__ = name
    call.__doc__ = fn.__doc__
    return call


# The indicators the sensors use, each a memoising twin of the TA-Lib function of that name.
ADOSC = _memoised("ADOSC", talib.ADOSC)
ADX = _memoised("ADX", talib.ADX)
AROONOSC = _memoised("AROONOSC", talib.AROONOSC)
ATR = _memoised("ATR", talib.ATR)
BBANDS = _memoised("BBANDS", talib.BBANDS)
BOP = _memoised("BOP", talib.BOP)
CCI = _memoised("CCI", talib.CCI)
CMO = _memoised("CMO", talib.CMO)
EMA = _memoised("EMA", talib.EMA)
MACD = _memoised("MACD", talib.MACD)
MAX = _memoised("MAX", talib.MAX)
MEDPRICE = _memoised("MEDPRICE", talib.MEDPRICE)
MFI = _memoised("MFI", talib.MFI)
MIN = _memoised("MIN", talib.MIN)
MINUS_DI = _memoised("MINUS_DI", talib.MINUS_DI)
NATR = _memoised("NATR", talib.NATR)
OBV = _memoised("OBV", talib.OBV)
PLUS_DI = _memoised("PLUS_DI", talib.PLUS_DI)
ROC = _memoised("ROC", talib.ROC)
RSI = _memoised("RSI", talib.RSI)
SAR = _memoised("SAR", talib.SAR)
SMA = _memoised("SMA", talib.SMA)
STDDEV = _memoised("STDDEV", talib.STDDEV)
STOCH = _memoised("STOCH", talib.STOCH)
STOCHRSI = _memoised("STOCHRSI", talib.STOCHRSI)
SUM = _memoised("SUM", talib.SUM)
TRANGE = _memoised("TRANGE", talib.TRANGE)
TYPPRICE = _memoised("TYPPRICE", talib.TYPPRICE)
ULTOSC = _memoised("ULTOSC", talib.ULTOSC)
VAR = _memoised("VAR", talib.VAR)
WILLR = _memoised("WILLR", talib.WILLR)
