"""The focus net: one grey crop -> signed defocus in µm and the 41-class head of the autofocus paper (TFLite)."""
