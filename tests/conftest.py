"""Session-wide set-up for the whole suite.

PyTorch imports triton lazily (its first optimiser or ``torch._dynamo`` use); in a process that has already
loaded TensorFlow (the classifier and focus-net trainers' tests) that import crashes with a segmentation fault,
while the other order is fine. The suite runs both in one process, so PyTorch's side is loaded first, here.
"""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import torch._dynamo  # noqa: F401
