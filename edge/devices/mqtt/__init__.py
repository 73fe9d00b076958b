"""The MQTT side of the appliance: topic grammar, payloads, broker configuration and the bridge."""
