"""The virtual microscope: simulated slide, optics, camera, stage and clock (DESIGN.md section 7)."""
