"""A Casino-like process for the crash tests: a Croupier on a standalone simulator subprocess.

    python tests/croupier_crash_driver.py REST_URL WS_URL STATE_DIR SESSION STAGE DELAY_S

It starts the croupier (recovery + reconciliation), then, unless STAGE is ``recover``, opens a
bracket and SIGKILLs itself at STAGE (``DELAY_S`` after reaching it, to vary the timing):

* ``entry_intent``   — the entry intent is journaled, the request not yet sent;
* ``entry_filled``   — the entry's reply arrived (filled), no stop asked yet;
* ``sl_placed``      — the stop-loss was acknowledged, the take-profit maybe not;
* ``cancel_sibling`` — the exit filled and the sibling's cancel is about to leave.

With ``recover`` it only starts (recovery + reconciliation), then prints one JSON line with the
tracker's view (position and realized PnL per symbol) and exits 0.
API key and secret come from CASINO_SIM_API_KEY / CASINO_SIM_API_SECRET.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.secrets import Secrets  # noqa: E402
from config.settings import CroupierSettings, ExchangeSettings  # noqa: E402
from core.clock import LiveClock  # noqa: E402
from core.events import Decision  # noqa: E402
from core.types import Side  # noqa: E402
from croupier.croupier import Croupier  # noqa: E402
from exchanges.binance.client import BinanceFutures  # noqa: E402
from exchanges.binance.urls import BinanceUrls  # noqa: E402

SYMBOL = "BTCUSDT"


def die_later(delay: float) -> None:
    """SIGKILL this process after ``delay`` seconds (0: now) — no cleanup, like kill -9."""
    if delay <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
    asyncio.get_running_loop().call_later(delay, os.kill, os.getpid(), signal.SIGKILL)


async def main(rest: str, ws: str, state_dir: Path, session: str, stage: str, delay: float) -> int:
    secrets = Secrets(os.environ["CASINO_SIM_API_KEY"], os.environ["CASINO_SIM_API_SECRET"])
    ex = BinanceFutures(BinanceUrls(rest=rest, ws=ws), clock=LiveClock(), settings=ExchangeSettings(),
                        secrets=secrets)
    await ex.start()
    real_place, real_algo, real_cancel_algo = ex.place_order, ex.place_algo_order, ex.cancel_algo_order

    async def place_order(request):  # type: ignore[no-untyped-def]
        if stage == "entry_intent" and request.client_order_id.endswith("E0"):
            die_later(0)
        order = await real_place(request)
        if stage == "entry_filled" and request.client_order_id.endswith("E0"):
            die_later(delay)
        return order

    async def place_algo_order(request):  # type: ignore[no-untyped-def]
        algo = await real_algo(request)
        if stage == "sl_placed" and request.type.is_stop:
            die_later(delay)
        return algo

    async def cancel_algo_order(symbol, **kw):  # type: ignore[no-untyped-def]
        if stage == "cancel_sibling":
            die_later(delay)
        return await real_cancel_algo(symbol, **kw)

    ex.place_order, ex.place_algo_order, ex.cancel_algo_order = place_order, place_algo_order, cancel_algo_order  # type: ignore[method-assign]
    # reduce-only legs outlive the position (closePosition ones expire with it): the sibling needs a cancel
    settings = CroupierSettings(stop_close_position=stage != "cancel_sibling")
    croupier = Croupier(ex, LiveClock(), settings, state_dir=state_dir, session_id=session,
                        symbols=[SYMBOL])
    await croupier.start()
    if stage != "recover":
        mark = (await ex.mark_price(SYMBOL)).mark_price
        tight = stage == "cancel_sibling"
        decision = Decision(SYMBOL, Side.BUY, 0, 0.7, 0.05, 0.05, (), mark)
        bid = await croupier.open_bracket(decision, Decimal("0.010"))
        if tight and bid is not None:
            # close the position by hand: the bracket must cancel both legs (the sibling cancel)
            from core.types import OrderRequest, OrderType
            await real_place(OrderRequest(SYMBOL, Side.SELL, OrderType.MARKET, Decimal("0.010"), "byhand" + session[-6:],
                                          reduce_only=True))
            await croupier.reconcile("position closed by hand")
        await asyncio.sleep(max(delay, 0) + 1.0)
        print(json.dumps({"survived": True}), flush=True)
        return 1
    view = croupier.tracker.position(SYMBOL)
    print(json.dumps({"quantity": str(view.quantity), "realized": str(view.realized_pnl),
                      "exchange_realized": str(view.exchange_realized_pnl), "status": croupier.status()}),
          flush=True)
    croupier.close()
    await ex.close()
    return 0


if __name__ == "__main__":
    rest_url, ws_url, state, session_id, stage_name, delay_s = sys.argv[1:7]
    sys.exit(asyncio.run(main(rest_url, ws_url, Path(state), session_id, stage_name, float(delay_s))))
