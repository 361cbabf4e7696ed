"""Bridges between the mesh and other systems (MQTT, Home Assistant)."""
