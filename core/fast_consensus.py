"""The player's consensus for every bar of a symbol at once, exact by construction.

``classify`` applies ``core.player.decide``'s rules (module docstring there) in the same
order to whole arrays of bars, *ignoring the debounce book* (bracket and cooldown depend on
trades; the fast replay applies them afterwards). Scores come from ``core.fast_tracker``'s
approximate scores (``BlockScores``), which differ from the tracker's ``math.fsum`` arithmetic
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
    # reductions with ``where=`` instead of masked copies: the (voters × bars) arrays are the
    # whole cost here, so every temporary of that shape saved counts
    present = ~np.isnan(v)
    n_present = np.count_nonzero(present, axis=0)
    qual = sc >= p.min_score
    qual &= present
    # two comparisons, not |sc - min_score| <= TOLERANCE: no (voters × bars) float temporary
    near = sc >= p.min_score - TOLERANCE
    near &= sc <= p.min_score + TOLERANCE
    near &= present
    near &= ~x.voter_neutral
    unsure = near.any(axis=0)
    w = np.abs(v)
    w *= sc  # NaN where missing; never read there (qual is False)
    pos = v > 0
    pos &= qual
    neg = v < 0
    neg &= qual
    long_w = np.add.reduce(w, axis=0, where=pos, initial=0.0)
    short_w = np.add.reduce(w, axis=0, where=neg, initial=0.0)
    total = long_w + short_w
    side_long = long_w > short_w
    win = np.maximum(long_w, short_w)
    lose = np.minimum(long_w, short_w)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(total > 0, (win - lose) / total, 0.0)
    # qualified voters on the winning side: pos where long wins, else neg (boolean algebra;
    # np.where broadcasting the side over the voters was several times slower)
    winners = pos & side_long
    winners |= neg & ~side_long
    winner_score = np.maximum.reduce(sc, axis=0, where=winners, initial=-np.inf)
    side = np.where(side_long, 1.0, -1.0)
    confidence = margin * np.where(np.isfinite(winner_score), winner_score, 0.0)
    unsure |= (total > 0) & (np.abs(long_w - short_w) <= TOLERANCE * np.maximum(total, 1e-300))
    unsure |= np.abs(margin - p.min_margin) <= TOLERANCE
    unsure |= np.abs(confidence - p.min_confidence) <= TOLERANCE

    c = x.context_signals
    c_present = ~np.isnan(c)
    ups = np.count_nonzero(c > 0, axis=0)  # NaN compares False: missing readings count nowhere
    downs = np.count_nonzero(c < 0, axis=0)
    trend = np.sign(ups - downs)

    code = np.full(n, CODE[DECISION], dtype=np.int8)
    # the rules in decide()'s order: the first failing one names the skip (assign in reverse)
    if p.htf_filter:
        code[(trend * side) < 0] = CODE[SKIP_AGAINST_HTF]
        code[np.count_nonzero(c_present, axis=0) == 0] = CODE[SKIP_HTF_MISSING]
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
