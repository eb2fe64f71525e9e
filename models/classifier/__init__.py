"""The structure classifier: LeNet-style 64x64 grey crop -> the five structure types and debris (TFLite)."""
