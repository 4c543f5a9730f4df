"""motcua commune node: dossiers at the one-stop counter, offline first."""

__version__ = "0.1.0"
