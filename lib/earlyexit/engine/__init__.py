"""Layer 2, training and provenance: the seeded training loop and its recipes, filter pruning, profile
artifacts, derived results, shipped weights and recertification. Imports only the layers below."""
