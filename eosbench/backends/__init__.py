"""Backends: the same task as pure functions of a flat θ, in torch (always) and JAX (optional extra)."""
