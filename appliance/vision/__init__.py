"""The per-frame pipeline: kernels -> candidates -> detector -> classifiers -> detections (docs/design.md §2)."""
