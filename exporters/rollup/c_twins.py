"""The fold's C modules, each the twin of a Python loop that stays its reference and fallback.

setup.py builds them wherever a C compiler is (``_bind_c``, ``_prefold_c``, ``_bands_c``);
without one the install goes on and the Python loops run, with the same results.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_twin"]


def load_twin(name: str) -> Any:
    """The built module ``exporters.rollup.<name>``, or None when it was not built."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
