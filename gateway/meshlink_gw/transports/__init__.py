"""Transports: thin adapters behind one interface (see base.py)."""
