"""The package version, in a module of its own so that any module can import it without importing
the package facade (``forensight/__init__.py``, which sits above every module)."""

__version__ = "0.1.0"
