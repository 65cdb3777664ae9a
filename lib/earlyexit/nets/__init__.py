"""Layer 1, the networks: the multi-exit API, both papers' model zoos, MSDNet, FLOPs and ET-profiles.
Imports only :mod:`earlyexit.core`."""
