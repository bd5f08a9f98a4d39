"""The compiled line parsers (workbench/ingest/_native.c, which includes _pg.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("workbench.ingest._native", ["workbench/ingest/_native.c"],
                             depends=["workbench/ingest/_pg.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"])])
