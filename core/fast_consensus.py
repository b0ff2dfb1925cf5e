"""The player's consensus for every bar of a symbol at once, exact by construction.

``classify`` applies ``core.player.decide``'s rules (module docstring there) in the same
order to whole arrays of bars, *ignoring the debounce book* (bracket and cooldown depend on
trades; the fast replay applies them afterwards). Scores come from
``core.fast_tracker.approx_scores``, which differ from the tracker's ``math.fsum`` arithmetic
by rounding only; every bar where a comparison is within ``TOLERANCE`` of its threshold (and
only those) is handed to ``exact`` — the real ``decide`` on the real readings and a real
tracker — whose answer replaces the vectorised one. So the reasons counted are the engine's;
and a bar classified as deciding is only a candidate: the fast replay acts on it only through
the real ``decide``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.player import (
    SKIP_AGAINST_HTF,
    SKIP_HTF_MISSING,
    SKIP_INSUFFICIENT,
    SKIP_LOW_CONFIDENCE,
    SKIP_LOW_MARGIN,
    SKIP_NO_QUALIFIED,
    SKIP_NO_SIGNAL,
    SKIP_TIE,
    PlayerParams,
)

DECISION = "decision"
REASONS: tuple[str, ...] = (SKIP_INSUFFICIENT, SKIP_NO_QUALIFIED, SKIP_NO_SIGNAL, SKIP_TIE, SKIP_LOW_MARGIN,
                            SKIP_LOW_CONFIDENCE, SKIP_HTF_MISSING, SKIP_AGAINST_HTF, DECISION)
CODE = {r: i for i, r in enumerate(REASONS)}
TOLERANCE = 1e-9  # ≫ the approximate scores' rounding (≈1e-12), ≪ any meaningful difference


@dataclass(frozen=True)
class BarInputs:
    """Per-bar inputs of one symbol over a block of bars (columns = bars)."""

    voter_signals: np.ndarray  # (voters, bars), NaN = missing
    voter_scores: np.ndarray  # (voters, bars), approximate
    voter_neutral: np.ndarray  # (voters, bars), True = exactly the neutral 0.5
    context_signals: np.ndarray  # (context sensors, bars), NaN = missing


def classify(x: BarInputs, p: PlayerParams, exact: Callable[[int], str]) -> np.ndarray:
    """Reason code per bar (``CODE``); ``exact(column)`` is asked for every unsure bar."""
    v, sc = x.voter_signals, x.voter_scores
    n = v.shape[1]
    present = ~np.isnan(v)
    n_present = present.sum(axis=0)
    qual = present & (sc >= p.min_score)
    unsure = (present & ~x.voter_neutral & (np.abs(sc - p.min_score) <= TOLERANCE)).any(axis=0)
    w = np.where(qual, sc * np.abs(np.nan_to_num(v)), 0.0)
    long_w = np.where(qual & (v > 0), w, 0.0).sum(axis=0)
    short_w = np.where(qual & (v < 0), w, 0.0).sum(axis=0)
    total = long_w + short_w
    side = np.where(long_w > short_w, 1.0, -1.0)
    win = np.maximum(long_w, short_w)
    lose = np.minimum(long_w, short_w)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(total > 0, (win - lose) / total, 0.0)
    winner_score = np.where(qual & (v * side[None, :] > 0), sc, -np.inf).max(axis=0, initial=-np.inf)
    confidence = margin * np.where(np.isfinite(winner_score), winner_score, 0.0)
    unsure |= (total > 0) & (np.abs(long_w - short_w) <= TOLERANCE * np.maximum(total, 1e-300))
    unsure |= np.abs(margin - p.min_margin) <= TOLERANCE
    unsure |= np.abs(confidence - p.min_confidence) <= TOLERANCE

    c = x.context_signals
    c_present = ~np.isnan(c)
    ups = (c_present & (c > 0)).sum(axis=0)
    downs = (c_present & (c < 0)).sum(axis=0)
    trend = np.sign(ups - downs)

    code = np.full(n, CODE[DECISION], dtype=np.int8)
    # the rules in decide()'s order: the first failing one names the skip (assign in reverse)
    if p.htf_filter:
        code[(trend * side) < 0] = CODE[SKIP_AGAINST_HTF]
        code[c_present.sum(axis=0) == 0] = CODE[SKIP_HTF_MISSING]
    code[confidence < p.min_confidence] = CODE[SKIP_LOW_CONFIDENCE]
    code[margin < p.min_margin] = CODE[SKIP_LOW_MARGIN]
    code[(total > 0) & (long_w == short_w)] = CODE[SKIP_TIE]
    code[total <= 0] = CODE[SKIP_NO_SIGNAL]
    code[~qual.any(axis=0)] = CODE[SKIP_NO_QUALIFIED]
    code[n_present < p.min_voters] = CODE[SKIP_INSUFFICIENT]
    # reasons decided before any score is used are exact whatever the rounding
    unsure &= n_present >= p.min_voters
    for col in np.flatnonzero(unsure):
        code[col] = CODE[exact(int(col))]
    return code
