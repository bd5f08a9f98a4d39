"""Analysis engines: an ibis backend with one table per canonical table over a case's committed Parquet.

Every analysis in `workbench.analysis` takes what `connect` returns, so the same expressions run on DuckDB
here and on Spark over the same Parquet. Each backend's session is pinned to UTC, because hour-of-day and date
truncation follow the session zone on every engine.

- `duckdb` (the default, no Java): views over the committed files in an in-memory DuckDB.
- `pyspark`: a SparkSession (by default `local[2]`, 1 GB driver, 4 shuffle partitions; set
  `WORKBENCH_SPARK_MASTER` and the usual `spark.*` settings through `spark_conf` to use a cluster) with one
  temporary view per table over exactly the committed files (`basePath` keeps the Hive `date` column).
"""

from __future__ import annotations

import os

import ibis

from . import schema
from .case import Case, view_sql
from .errors import WorkbenchError
from .remote import open_case

ENGINES = ("duckdb", "pyspark")


def connect(case: Case | str | os.PathLike, engine: str = "duckdb", spark_conf: dict | None = None) -> ibis.BaseBackend:
    """An ibis backend (session in UTC) with a table per canonical table over the case's committed files.

    Partitioned tables keep the Hive `date` column (a DATE), so a `date` filter beside a `ts` range skips
    partitions. Tables with no committed file are there, typed and empty.
    """
    case = case if isinstance(case, Case) else open_case(case)
    if engine not in ENGINES:
        raise WorkbenchError(f"engine {engine!r} is not available; choose one of {', '.join(ENGINES)}")
    if not case.exists():
        raise WorkbenchError(f"{case.base()}: no case here; create one with `workbench ingest {case.base()} FILES…`")
    files = case.committed_files()
    if engine == "pyspark":
        return _spark(case, files, spark_conf or {})
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone='UTC'")
    case.prepare(con.con)
    for table in schema.TABLES:
        con.raw_sql(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql(case.base(), table, files.get(table, []))}')
    return con


def spark_session(conf: dict | None = None):
    """A SparkSession pinned to UTC; local[2] with a 1 GB driver unless told otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise WorkbenchError("the pyspark engine needs pyspark and Java 17: pip install 'registry-workbench[spark]'") from None
    settings = {
        "spark.driver.memory": "1g",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.ui.enabled": "false",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
        "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
        **(conf or {}),
    }
    b = SparkSession.builder.master(os.environ.get("WORKBENCH_SPARK_MASTER", "local[2]")).appName("workbench")
    for k, v in settings.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark


def _spark(case: Case, files: dict[str, list[str]], conf: dict) -> ibis.BaseBackend:
    import pyarrow as pa
    import pyarrow.parquet as pq

    spark = spark_session(conf)
    base = case.base().replace("s3://", "s3a://", 1)
    empty_dir = None
    for table in schema.TABLES:
        rels = files.get(table, [])
        if rels:
            paths = [f"{base}/{rel}" for rel in rels]
            reader = spark.read
            if table in schema.PARTITIONED:
                reader = reader.option("basePath", f"{base}/parquet/{table}")
            df = reader.parquet(*paths)
        else:
            import tempfile

            empty_dir = empty_dir or tempfile.mkdtemp(prefix="workbench-empty-")
            path = os.path.join(empty_dir, f"{table}.parquet")
            pq.write_table(schema.TABLES[table].empty_table(), path)
            df = spark.read.parquet(path)
            if table in schema.PARTITIONED:
                from pyspark.sql import functions as F

                df = df.withColumn("date", F.lit(None).cast("date"))
        df.createOrReplaceTempView(table)
    del pa
    return ibis.pyspark.connect(spark)
