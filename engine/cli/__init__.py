"""`dyadic`: the command line (main.py), its option types (options.py)."""

from .main import main

__all__ = ["main"]
