"""The learned reading: the classical search's frames -> how far the true focus lies from its reading (ONNX)."""
