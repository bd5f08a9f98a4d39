"""The compiled line parser (workbench/ingest/_native.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("workbench.ingest._native", ["workbench/ingest/_native.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"])])
