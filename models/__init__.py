"""dyadic.models."""
