"""The version of dreamflare-store (ops name it, so a replica can say what to upgrade to)."""

__version__ = "0.2.0"
