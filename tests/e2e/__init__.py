"""End-to-end tests: the real ``vrm`` CLI and ``vrm serve`` processes on loopback."""
