"""Devices on the branch LAN: MQTT bridge, discovery, registry and pairing, fleet config."""
