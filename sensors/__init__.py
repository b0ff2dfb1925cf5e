"""Signal sensors: pure, causal functions of OHLCV numpy arrays (built on TA-Lib)."""
