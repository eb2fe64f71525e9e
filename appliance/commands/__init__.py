"""Top-level commands that belong to no single subsystem."""
