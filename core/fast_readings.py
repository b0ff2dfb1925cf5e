"""Every sensor reading of a replay at once: batch signals mapped onto the 1m bars.

For each timeframe the plan runs, ``core.sensor_plan.batch_signals`` computes the signals of
the whole history (equal to the live pool after warm-up, tests/test_sensors_parity.py). The
engine's player, deciding 1m bar ``i``, sees for every timeframe the reading of the latest
bar of that timeframe that closed at or before bar ``i``'s close — ``visible[tf][i]`` here —
and the tracker records a timeframe's readings only on the 1m bar that closes it
(``fresh``). Nothing later than bar ``i``'s close is ever visible (no look-ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from core.history import CandleSeries, resample
from core.sensor_plan import PlannedSensor, SensorPlan, batch_signals
from core.types import Timeframe
from sensors.base import Bars, SensorSpec


@dataclass(frozen=True)
class TimeframeReadings:
    """One timeframe's sensors for one symbol, mapped onto the symbol's 1m bars."""

    timeframe: Timeframe
    sensors: tuple[PlannedSensor, ...]
    signals: dict[str, np.ndarray]  # per sensor, indexed by this timeframe's bars
    open_time: np.ndarray  # this timeframe's bar open times
    # per 1m bar (from the first one read on, when ``symbol_readings`` is given one: the replay's
    # global bars 0 …): the index of the latest closed bar of this timeframe (-1: none), and
    # whether that 1m bar closes a bar of this timeframe
    visible: np.ndarray
    fresh: np.ndarray


@dataclass(frozen=True)
class SignalTable:
    """One timeframe's signals of every symbol as rows of one array, so the consensus gathers
    all sensors of all symbols at many bars with one ``np.take`` (``gather``)."""

    timeframe: Timeframe
    voters: int  # rows 0 … voters-1: the voting sensors, then the context sensors (each in plan order)
    table: np.ndarray  # (sensors, columns): each symbol's bars in turn, each symbol followed by an all-NaN column
    columns: np.ndarray  # (replay bars + 1, symbols): the column visible at global bar g (NaN column: none yet)

    def gather(self, g0: int, g1: int, voters: np.ndarray, context: np.ndarray) -> None:
        """Voter and context rows at global bars ``g0 … g1-1`` of every symbol, into columns
        ``(g - g0) * symbols + symbol`` of ``voters`` / ``context``."""
        idx = self.columns[g0:g1].ravel()
        # mode="clip": indices are valid by construction, and "raise" buffers the output
        np.take(self.table[:self.voters], idx, axis=1, out=voters, mode="clip")
        np.take(self.table[self.voters:], idx, axis=1, out=context, mode="clip")


def stack_tables(readings: list[dict[Timeframe, TimeframeReadings]], n_bars: int) -> dict[Timeframe, SignalTable]:
    """One ``SignalTable`` per timeframe over every symbol, whose readings start at global bar 0
    (``symbol_readings`` with ``first_close_ms``). Each symbol's ``signals`` become views of the
    table's rows (no second copy)."""
    out: dict[Timeframe, SignalTable] = {}
    for tf, rd0 in readings[0].items():
        ordered = [ps for ps in rd0.sensors if not ps.context] + [ps for ps in rd0.sensors if ps.context]
        lengths = [len(r[tf].open_time) for r in readings]
        starts = np.concatenate([[0], np.cumsum(np.array(lengths) + 1)]).astype(np.int64)
        table = np.empty((len(ordered), int(starts[-1])))
        table[:, starts[1:] - 1] = np.nan  # each symbol's reading before its first bar: none
        # filled symbol by symbol (rows), then laid out bar by bar as gather reads it: writing a
        # column of the (bars, symbols) array directly strides through all of it per symbol
        by_symbol = np.empty((len(readings), n_bars + 1), dtype=np.int64)
        for k, r in enumerate(readings):
            rd = r[tf]
            if rd.sensors != rd0.sensors:
                raise ValueError(f"stack_tables: symbols plan different sensors on {tf}")
            lo, n = int(starts[k]), lengths[k]
            for row, ps in enumerate(ordered):
                table[row, lo:lo + n] = rd.signals[ps.name]
                rd.signals[ps.name] = table[row, lo:lo + n]
            j = rd.visible[:n_bars + 1]
            by_symbol[k] = lo + np.where(j >= 0, j, n)
        columns = np.ascontiguousarray(by_symbol.T)
        out[tf] = SignalTable(tf, sum(not ps.context for ps in ordered), table, columns)
    return out


def series_for(m1: CandleSeries, timeframe: Timeframe) -> CandleSeries:
    """The timeframe's closed bars built from the 1m history, as the engine's rings hold them."""
    return m1 if timeframe is Timeframe.M1 else resample(m1, timeframe)


def symbol_readings(m1: CandleSeries, plan: SensorPlan, specs: Mapping[str, SensorSpec], *,
                    first_close_ms: int | None = None, history_bars: int | None = None) -> dict[Timeframe, TimeframeReadings]:
    """Signals of every planned sensor for one symbol, with the 1m visibility map.

    With ``first_close_ms`` (the first 1m close the replay reads) and ``history_bars`` (the
    engine's ``sensors.window_bars``), each timeframe is computed from ``history_bars`` bars
    before the first one read, not from the start of the file: every window the live pool
    evaluates lies inside that history, which is what batch parity needs (a recursive
    indicator has settled within its window); older bars only cost time.

    With ``first_close_ms`` the readings start at the bar visible at that close, and ``visible``
    / ``fresh`` at the 1m bar closing then: the history before it is computed but never read (it
    is most of a short replay's bars: 1,280 per timeframe, and all but the last of the recorded
    1m bars), so it is not kept.
    """
    close_1m = m1.open_time + Timeframe.M1.ms
    if first_close_ms is not None:
        close_1m = close_1m[int(np.searchsorted(close_1m, first_close_ms)):]
    out: dict[Timeframe, TimeframeReadings] = {}
    for tf in plan.timeframes:
        if first_close_ms is not None and history_bars is not None:
            s = _history(m1, tf, first_close_ms, history_bars)
        else:
            s = series_for(m1, tf)
        bars = Bars(s.open, s.high, s.low, s.close, s.volume)
        signals = batch_signals(plan, specs, tf, bars)
        closes = s.open_time + tf.ms
        lo = 0 if first_close_ms is None else max(0, int(np.searchsorted(closes, first_close_ms, side="right")) - 1)
        if lo:
            signals = {name: x[lo:] for name, x in signals.items()}
        visible, fresh = _visibility(closes[lo:], close_1m)
        out[tf] = TimeframeReadings(tf, plan.sensors_for(tf), signals, s.open_time[lo:], visible, fresh)
    return out


def _history(m1: CandleSeries, tf: Timeframe, first_close_ms: int, history_bars: int) -> CandleSeries:
    """``series_for(m1, tf)`` from ``history_bars`` bars before the one closed at ``first_close_ms``.

    Resampling only the 1m bars from a bucket boundary a little earlier than that gives the
    same bars: every bucket after the cut holds the same 1m rows (the first, if partial, is
    dropped as the whole series' first would be), so the resampled cut is a suffix of the
    whole resample. Gaps make bars fewer than their time span suggests: when the cut leaves
    too few bars before the first one read, the whole history is resampled after all."""
    cut_ms = first_close_ms - (history_bars + 2) * tf.ms
    start = int(np.searchsorted(m1.open_time, cut_ms - cut_ms % tf.ms)) if tf is not Timeframe.M1 else 0
    for lo_1m in ((start, 0) if start else (0,)):
        s = series_for(_tail(m1, lo_1m) if lo_1m else m1, tf)
        first = int(np.searchsorted(s.open_time + tf.ms, first_close_ms, side="right")) - 1
        if lo_1m and first < history_bars:
            continue  # gaps before the first bar read: not enough history after the cut
        lo = max(0, first - history_bars)
        return _tail(s, lo) if lo else s
    raise AssertionError("unreachable: the whole history is always accepted")


def _visibility(closes: np.ndarray, close_1m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 1m bar (closing at ``close_1m``): the index of the latest bar of a timeframe (closing
    at ``closes``, sorted) closed by then, -1 if none; and whether one closes exactly then.

    A linear merge of the two sorted time lines: each bar of the timeframe becomes visible from
    the first 1m bar closing at or after it (one search per bar of the timeframe, not per 1m
    bar), and the visible index is the running count of bars become visible. The 1m timeframe's
    own bars are the last 1m bars (checked, not assumed): no search at all."""
    n = len(close_1m)
    off = n - len(closes)
    fresh = np.zeros(n, dtype=bool)
    if off >= 0 and np.array_equal(close_1m[off:], closes):
        at = np.arange(off, n)
        fresh[off:] = True
    else:
        at = np.searchsorted(close_1m, closes, side="left")
        inside = at < n
        fresh[at[inside][close_1m[at[inside]] == closes[inside]]] = True
    # at is sorted: bar k - 1 stays the visible one from at[k-1] up to at[k]
    visible = np.repeat(np.arange(-1, len(closes), dtype=np.int64), np.diff(at, prepend=0, append=n))
    return visible, fresh


def _tail(s: CandleSeries, lo: int) -> CandleSeries:
    from dataclasses import replace

    return replace(s, open_time=s.open_time[lo:], open=s.open[lo:], high=s.high[lo:], low=s.low[lo:],
                   close=s.close[lo:], volume=s.volume[lo:])
