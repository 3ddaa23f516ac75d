"""ml_collections configs: `get_config(arg=None)` named after what they reproduce; `get_sweep()`."""
