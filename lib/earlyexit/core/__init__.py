"""Layer 0, the foundations: datasets, the machine, the papers' printed numbers, plotting, atomic files,
content hashes and code fingerprints. Imports nothing else of :mod:`earlyexit`."""
