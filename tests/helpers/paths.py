"""Where the project's files are, however deep in tests/ a test module sits."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
