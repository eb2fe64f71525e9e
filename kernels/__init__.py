"""Numba kernels on 2-D uint8 frames: thresholds, focus measures, blob search (DESIGN.md section 2)."""
