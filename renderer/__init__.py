"""dyadic.renderer."""
