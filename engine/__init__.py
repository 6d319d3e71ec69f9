"""dyadic.engine."""
