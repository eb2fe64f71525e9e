"""Device interfaces (camera, stage, triggers), each with a real and a simulated implementation."""
