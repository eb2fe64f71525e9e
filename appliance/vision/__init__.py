"""The per-frame pipeline: kernels -> candidates -> detector -> classifiers -> detections (DESIGN.md §2)."""
