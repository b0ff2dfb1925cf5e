"""Crash-safe persistence: atomic snapshots, the order-intent journal, recovery."""
