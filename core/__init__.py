"""Casino's kernel (types, events, errors, ports, clock, metrics) and runtime (engine, player …)."""
