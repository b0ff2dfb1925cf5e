"""Venues behind ExchangePort: the native Binance connector and the simulated Binance."""
