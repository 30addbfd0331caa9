"""facelab: lightweight CNNs for face identity, attributes and emotions."""
__version__ = "0.1.0"
