"""The package version, on the ground floor so any module can read it without importing ``yolotl``."""

__version__ = "0.1.0"
