"""labcoat: hands-on Linux labs in disposable Docker sandboxes."""

__version__ = "0.1.0"
