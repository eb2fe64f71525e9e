"""tppscan: the host program of the autonomous TPP slide scanner (see DESIGN.md)."""

__version__ = "0.1.0"
