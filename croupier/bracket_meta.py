"""What a bracket record does not hold: the decision behind it and the money of its legs' fills.

Kept by the OCO manager per bracket id and saved in the croupier's snapshot section; a bracket
whose meta was lost (journal newer than every snapshot) gets the adoption defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.types import ZERO
from state.codec import Encoded


@dataclass(slots=True)
class BracketMeta:
    """What the bracket record does not hold: the decision behind it and per-leg fill money."""

    tp_fraction: float
    sl_fraction: float
    confidence: float = 0.0
    votes: tuple[tuple[str, float], ...] = ()
    entry_deadline_ms: int | None = None
    adopted: bool = False
    fees: Decimal = ZERO
    funding_start: Decimal = ZERO
    protect_failure: str = ""  # a refusal that makes further stop attempts pointless
    fills_seen: Decimal = ZERO  # Σ quantity of this bracket's trades seen on the stream (fees known)
    leg_notional: dict[str, Decimal] = field(default_factory=dict)  # client id → Σ qty × price
    # ``votes`` (~70 pairs with the default ensemble) encoded once: a bracket's meta is in every
    # snapshot, and walking its votes was most of the croupier section's encoding time
    _votes_encoded: tuple[tuple[tuple[str, float], ...], Encoded] | None = field(default=None, repr=False,
                                                                                    compare=False)

    def to_document(self) -> dict[str, Any]:
        """``to_dict`` for a snapshot: the same JSON, with the votes encoded once per bracket."""
        if self._votes_encoded is None or self._votes_encoded[0] is not self.votes:
            self._votes_encoded = (self.votes, Encoded([list(v) for v in self.votes]))
        document = self.to_dict(votes=False)
        document["votes"] = self._votes_encoded[1]
        return document

    def to_dict(self, *, votes: bool = True) -> dict[str, Any]:
        return {
            "tp_fraction": self.tp_fraction, "sl_fraction": self.sl_fraction, "confidence": self.confidence,
            **({"votes": [list(v) for v in self.votes]} if votes else {}), "entry_deadline_ms": self.entry_deadline_ms,
            "adopted": self.adopted, "fees": str(self.fees), "funding_start": str(self.funding_start),
            "protect_failure": self.protect_failure, "fills_seen": str(self.fills_seen),
            "leg_notional": {k: str(v) for k, v in self.leg_notional.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BracketMeta:
        return cls(
            float(data["tp_fraction"]), float(data["sl_fraction"]), float(data.get("confidence", 0.0)),
            tuple((str(s), float(w)) for s, w in data.get("votes", [])), data.get("entry_deadline_ms"),
            bool(data.get("adopted", False)), Decimal(data.get("fees", "0")),
            Decimal(data.get("funding_start", "0")), str(data.get("protect_failure", "")),
            Decimal(data.get("fills_seen", "0")),
            {k: Decimal(v) for k, v in (data.get("leg_notional") or {}).items()},
        )
