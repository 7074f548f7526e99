"""Real hardware around the drivers: udev names, device matching, systemd, hot-plug."""
