"""earlyexit: multi-exit networks, Exit Predictor (Paper A) and EINet elastic inference (Paper B)."""

from earlyexit.core import reads as _reads

__version__ = "0.1.0"

_reads.install_from_env()  # a figure run by the pipeline records the artifacts it reads (core.reads)
