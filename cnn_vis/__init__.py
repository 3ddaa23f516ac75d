"""cnn_vis: understanding convolutional networks with JAX and Flax.

A technique is a pure function of (apply_fn, variables, images, settings); experiments read an
ml_collections config, call techniques and write images, metrics and a report into a workdir.
"""
