"""alml: machine-learned surrogates for first-principles simulation of metals."""

__version__ = "0.1.0"
