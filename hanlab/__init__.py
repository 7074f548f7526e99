"""hanlab: a hardware-in-the-loop ZigBee HAN lab controller for GB smart metering.

See ``docs/architecture.md`` for what is built and ``README.md`` for the quick start.
"""

__version__ = "0.1.0"

from hanlab import _compiled

_compiled.install()
