"""trackstream's version (``pipelines.__version__``), at the bottom so that any module can name it."""

__version__ = "0.1.0"
