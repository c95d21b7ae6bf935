"""edge-ad: real-time visual anomaly detection at the edge (the runtime half; never imports torch)."""

__version__ = "0.1.0"
