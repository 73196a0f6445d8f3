"""Offboarding: revoke departed staff's access on every host, verified (Art. 38)."""
