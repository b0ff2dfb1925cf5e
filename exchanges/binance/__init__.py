"""Native Binance USD-M futures connector (aiohttp REST, websockets streams)."""
