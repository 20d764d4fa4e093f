"""torch-shrink: prune, recover, export, quantize and benchmark PyTorch vision models."""

__version__ = "0.1.0"
