"""Event bus, live statistics, MQTT publishing and the embedded broker."""
