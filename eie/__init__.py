"""eie: generator for EIE sparse-inference accelerators."""
__version__ = "0.1.0"
