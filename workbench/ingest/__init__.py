"""Ingest: detect each file's wrappers and format, parse it in blocks inside DuckDB, write canonical Parquet."""
