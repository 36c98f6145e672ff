"""Build hook for the one C extension; everything else is in pyproject.toml.

``exporters.otlp._call_rows_c`` speeds up the collector's reading of model-call
log records. It is optional: without a C compiler the install goes on and the
collector reads them in Python (``exporters/otlp/call_rows.py``), with the same
results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "exporters.otlp._call_rows_c",
            sources=["exporters/otlp/_call_rows_c.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
