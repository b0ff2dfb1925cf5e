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
    voters_present: np.ndarray | None = None  # (bars,) voters with a reading; None: counted from voter_signals


def classify(x: BarInputs, p: PlayerParams, exact: Callable[[int], str]) -> np.ndarray:
    """Reason code per bar (``CODE``); ``exact(column)`` is asked for every unsure bar."""
    v, sc = x.voter_signals, x.voter_scores
    n = v.shape[1]
    # the (voters × bars) arrays are the whole cost here, so each pass over them saved counts:
    # reductions take ``where=`` instead of masked copies, and what only a few bars need is
    # computed on those bars' columns alone
    n_present = x.voters_present if x.voters_present is not None else np.count_nonzero(~np.isnan(v), axis=0)
    # a missing voter never qualifies: pos / neg below are False where the signal is NaN, and
    # the one test that reads ``qual`` alone (any qualified voter) checks presence on its few bars
    qual = sc >= p.min_score
    # two comparisons, not |sc - min_score| <= TOLERANCE: no (voters × bars) float temporary;
    # a missing voter near the threshold only sends its bar to the exact path
    near = sc >= p.min_score - TOLERANCE
    near &= sc <= p.min_score + TOLERANCE
    if x.voter_neutral.any():
        near &= ~x.voter_neutral
    unsure = near.any(axis=0)
    w = v * sc  # signed weight: the long side's weights, and minus the short side's (bit for bit); NaN where missing
    pos = v > 0
    pos &= qual
    neg = v < 0
    neg &= qual
    long_w = np.add.reduce(w, axis=0, where=pos, initial=0.0)
    short_w = np.subtract(0.0, np.add.reduce(w, axis=0, where=neg, initial=0.0))
    total = long_w + short_w
    # some voter qualifies wherever a side weighs anything; elsewhere (few bars) look
    qualified = total > 0
    rest = np.flatnonzero(~qualified)
    if rest.size:
        qualified[rest] = (qual[:, rest] & ~np.isnan(v[:, rest])).any(axis=0)
    side_long = long_w > short_w
    win = np.maximum(long_w, short_w)
    lose = np.minimum(long_w, short_w)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(total > 0, (win - lose) / total, 0.0)
    # confidence = margin × the best winning score; the winners all qualify (score >= min_score),
    # so where margin × min_score clears min_confidence the best score cannot matter, nor where
    # the margin already fails (low_margin names the skip): +inf there, computed on the rest
    confidence = np.full(n, np.inf)
    ask = np.flatnonzero((margin >= p.min_margin - TOLERANCE) & ~(margin * p.min_score > p.min_confidence + TOLERANCE))
    if ask.size:
        s_long = side_long[ask]
        # qualified voters on the winning side: pos where long wins, else neg (boolean algebra;
        # np.where broadcasting the side over the voters was several times slower)
        winners = pos[:, ask] & s_long
        winners |= neg[:, ask] & ~s_long
        winner_score = np.maximum.reduce(sc[:, ask], axis=0, where=winners, initial=-np.inf)
        confidence[ask] = margin[ask] * np.where(np.isfinite(winner_score), winner_score, 0.0)
    side = np.where(side_long, 1.0, -1.0)
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
    code[~qualified] = CODE[SKIP_NO_QUALIFIED]
    code[n_present < p.min_voters] = CODE[SKIP_INSUFFICIENT]
    # reasons decided before any score is used are exact whatever the rounding
    unsure &= n_present >= p.min_voters
    for col in np.flatnonzero(unsure):
        code[col] = CODE[exact(int(col))]
    return code
