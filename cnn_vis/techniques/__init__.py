"""Techniques: pure, jitted functions of (apply_fn, variables, inputs, settings); no I/O."""
