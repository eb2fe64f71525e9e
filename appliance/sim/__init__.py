"""The virtual microscope: simulated slide, optics, camera, stage and clock (docs/design.md §7)."""
