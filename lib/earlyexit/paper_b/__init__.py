"""Layer 3, Paper B (EINet: ET/CS-profiles, CS-Predictors, accuracy expectation, hybrid search).
Imports only the layers below; never :mod:`earlyexit.paper_a`."""
