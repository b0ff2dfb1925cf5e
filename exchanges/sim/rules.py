"""Symbol filters, margin brackets and fees of the simulated symbols.

Filter values come from Binance's real ``exchangeInfo`` (the 2021 capture in
``fixtures/binance/cryptofeed/extracted/rest_exchangeInfo_full_2021-07-22.json``) updated to
today's values where they changed and are well known: BTCUSDT's tick went 0.01 → 0.10 (2022
capture in nautilus' ``http_futures_market_exchange_info.json``) and its MIN_NOTIONAL rose to
100 USDT, ETHUSDT's to 20 USDT; PERCENT_PRICE is 1.05/0.95 for BTC and ETH (today's value),
1.15/0.85 for the others (the capture's).

=========  ========  =====  ========  ============  =====  ======
symbol     tick      step   minQty    min notional  pp/qp  maint.
=========  ========  =====  ========  ============  =====  ======
BTCUSDT    0.1       0.001  0.001     100           2/3    0.40 %
ETHUSDT    0.01      0.001  0.001     20            2/3    0.40 %
BNBUSDT    0.010     0.01   0.01      5             3/2    0.50 %
SOLUSDT    0.0010    1      1         5             4/0    0.50 %
XRPUSDT    0.0001    0.1    0.1       5             4/1    0.50 %
DOGEUSDT   0.000010  1      1         5             6/0    0.50 %
ADAUSDT    0.00010   1      1         5             5/0    0.50 %
=========  ========  =====  ========  ============  =====  ======

Other symbols (e.g. the 50-symbol benchmark) get generic filters scaled to their first price:
tick = 10^(⌊log10 p⌋ − 4), step so that one step is worth about 0.1–1 USDT, min notional 5.

Margin (simplified from Binance's first leverage bracket, applied at every notional):
maintenance rate as in the table (0.40 % BTC/ETH, 0.50 % others, 1 % generic), maintenance
amount 0, maximum leverage 125 (BTC/ETH), 75 (listed others), 50 (generic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from core.types import SymbolRules

D = Decimal


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What the simulator knows about one symbol: filters plus margin parameters."""

    rules: SymbolRules
    maint_rate: Decimal
    max_leverage: int
    max_notional: Decimal

    @property
    def symbol(self) -> str:
        return self.rules.symbol


def _spec(symbol: str, base: str, tick: str, step: str, min_qty: str, max_qty: str, mkt_max: str,
          notional: str, pp: int, qp: int, up: str, down: str, min_price: str, max_price: str,
          maint: str, max_lev: int) -> SymbolSpec:
    return SymbolSpec(
        rules=SymbolRules(
            symbol=symbol, tick_size=D(tick), step_size=D(step), min_qty=D(min_qty), max_qty=D(max_qty),
            min_price=D(min_price), max_price=D(max_price), market_step_size=D(step),
            market_min_qty=D(min_qty), market_max_qty=D(mkt_max), min_notional=D(notional),
            multiplier_up=D(up), multiplier_down=D(down), base_asset=base, price_precision=pp,
            quantity_precision=qp, trigger_protect=D("0.0500"),
        ),
        maint_rate=D(maint), max_leverage=max_lev, max_notional=D("1000000000"),
    )


KNOWN: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        _spec("BTCUSDT", "BTC", "0.10", "0.001", "0.001", "1000", "120", "100", 2, 3, "1.0500", "0.9500",
              "556.80", "4529764", "0.004", 125),
        _spec("ETHUSDT", "ETH", "0.01", "0.001", "0.001", "10000", "2000", "20", 2, 3, "1.0500", "0.9500",
              "39.86", "306177", "0.004", 125),
        _spec("BNBUSDT", "BNB", "0.010", "0.01", "0.01", "100000", "20000", "5", 3, 2, "1.1500", "0.8500",
              "6.600", "100000", "0.005", 75),
        _spec("SOLUSDT", "SOL", "0.0010", "1", "1", "1000000", "20000", "5", 4, 0, "1.1500", "0.8500",
              "0.4200", "6857", "0.005", 75),
        _spec("XRPUSDT", "XRP", "0.0001", "0.1", "0.1", "10000000", "2000000", "5", 4, 1, "1.1500", "0.8500",
              "0.0143", "100000", "0.005", 75),
        _spec("DOGEUSDT", "DOGE", "0.000010", "1", "1", "50000000", "30000000", "5", 6, 0, "1.1500", "0.8500",
              "0.002440", "30", "0.005", 75),
        _spec("ADAUSDT", "ADA", "0.00010", "1", "1", "10000000", "3000000", "5", 5, 0, "1.1500", "0.8500",
              "0.01740", "15", "0.005", 75),
    )
}


def spec_for(symbol: str, reference_price: Decimal) -> SymbolSpec:
    """The spec of a known symbol, or generic filters scaled to ``reference_price``."""
    if symbol in KNOWN:
        return KNOWN[symbol]
    if reference_price <= 0:
        raise ValueError(f"{symbol}: need a positive reference price for generic filters")
    mag = math.floor(math.log10(float(reference_price)))
    pp = max(0, 4 - mag)
    tick = D(1).scaleb(-pp)
    qp = max(0, min(8, mag + 1))
    step = D(1).scaleb(-qp)
    base = symbol[:-4] if symbol.endswith("USDT") else symbol
    return _spec(symbol, base, str(tick), str(step), str(step), "10000000", "1000000", "5", pp, qp,
                 "1.1500", "0.8500", str(tick), "1000000", "0.01", 50)


def decimals(value: Decimal) -> int:
    """Digits after the decimal point of ``value`` as written (``1.10`` → 2)."""
    exp = value.as_tuple().exponent
    return max(0, -int(exp)) if isinstance(exp, int) else 0


def to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    """``value`` on the tick grid, rounded in the given direction, written with the tick's exponent."""
    return ((value / tick).to_integral_value(rounding) * tick).quantize(tick)
