"""The staff pages under /pipeline: one route module per job (board, leads, follow_up, demo), their shared
answers (responses.py) and page contexts (pages.py). Route modules never import each other."""

from . import board, demo, follow_up, leads, passes, value  # noqa: F401  (each registers its routes on the blueprint)
from .blueprint import admin_bp, bp

__all__ = ["admin_bp", "bp"]
