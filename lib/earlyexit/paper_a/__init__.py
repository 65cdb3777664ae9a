"""Layer 3, Paper A (Exit Predictor, device-edge co-inference, bandwidth-adaptive thresholds).
Imports only the layers below; never :mod:`earlyexit.paper_b`."""
