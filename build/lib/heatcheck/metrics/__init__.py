"""Metrics: pure functions on numpy arrays of maps (and masks, inputs), one metric per function.

Nothing here imports TensorFlow or pytest, so every metric can be tested on hand-made arrays
and reused on maps from any framework. Each metric carries its ``direction`` ("higher" or
"lower" is better) and cites its paper in a ``References:`` line.
"""
