"""Security suite: hostile input, floods, local attack surface, identity (docs/reliability.md)."""
