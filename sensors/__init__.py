"""Signal sensors: pure, causal functions of OHLCV numpy arrays (built on TA-Lib).

``sensors.base`` defines the contract (``Bars``, ``SensorSpec``, the window rule),
``sensors.registry`` lists every sensor, ``sensors.batch`` runs them over whole histories.
This package imports nothing from the rest of Casino.
"""
