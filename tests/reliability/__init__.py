"""Reliability suite: crashes, network faults, long outages (docs/reliability.md)."""
