"""Open-source out-of-hospital emergency (ambulance) dispatch."""

__version__ = "0.1.0"
