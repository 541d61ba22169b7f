"""sgbench: a benchmark for surrogate-gradient methods of spiking neural networks."""
__version__ = "0.2.0"
