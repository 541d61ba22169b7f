"""Measurements beyond accuracy: the probe batch and the gradient diagnostics."""
