"""earlyexit: multi-exit networks, Exit Predictor (Paper A) and EINet elastic inference (Paper B)."""

__version__ = "0.1.0"
