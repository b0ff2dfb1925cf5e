"""Casino's simulated Binance USD-M futures exchange (loopback server and in-process)."""
