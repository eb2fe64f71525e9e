"""tppscan: the host program of the autonomous TPP slide scanner (see docs/design.md)."""

__version__ = "0.1.0"
