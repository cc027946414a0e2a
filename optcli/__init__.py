"""optcli: make trained neural networks smaller and faster, and show the trade-off honestly."""

__version__ = "0.1.0"
