"""stedi: the STEDI lakehouse — raw sensor feeds into privacy-safe training data."""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)
