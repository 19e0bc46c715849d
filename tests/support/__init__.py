"""Test doubles shared by the tiers: things the platform talks to that a test serves itself
(``pyindex``: a private Python package index with wheels made by hand)."""
