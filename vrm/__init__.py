"""vrm: a personal node for Vendor Relationship Management."""

__version__ = "0.1.0"
