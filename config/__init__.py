"""Typed, validated settings: TOML file < CASINO_* environment < command-line flags."""
