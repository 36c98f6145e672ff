"""Build hook for the C extensions; everything else is in pyproject.toml.

Hot loops of the collector, each with a Python twin that is the reference and
the fallback: ``exporters.otlp._call_rows_c`` reads model-call log records into
rows (``exporters/otlp/call_rows.py``); ``exporters.rollup._bind_c`` groups the
rows the rollup writer inserts by their None columns (``exporters/rollup/binding.py``);
``exporters.rollup._prefold_c`` groups a
fold's rows for the aggregates and ``user_calls`` (``exporters/rollup/prefold.py``),
``exporters.rollup._bands_c`` its calls into bands
(``exporters/rollup/band_grouping.py``). All are optional: without a C compiler
the install goes on and the Python twins run, with the same results.
"""

from setuptools import Extension, setup

_FOLD_HEADER = "exporters/rollup/_fold_c.h"  # helpers of the fold modules
_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]

setup(
    ext_modules=[
        Extension(name, sources=[source], depends=depends, extra_compile_args=_FLAGS, optional=True)
        for name, source, depends in (
            ("exporters.otlp._call_rows_c", "exporters/otlp/_call_rows_c.c", []),
            ("exporters.rollup._bind_c", "exporters/rollup/_bind_c.c", []),
            ("exporters.rollup._prefold_c", "exporters/rollup/_prefold_c.c", [_FOLD_HEADER]),
            ("exporters.rollup._bands_c", "exporters/rollup/_bands_c.c", [_FOLD_HEADER]),
        )
    ]
)
