"""Registry incident workbench: evidence from registries, proxies, databases and hosts in one case store."""

from .case import Case
from .errors import WorkbenchError
from .export.report import run_report
from .export.weekly import run_weekly
from .ingest.pipeline import IngestSummary, ingest
from .query import run_query

__all__ = ["Case", "WorkbenchError", "IngestSummary", "ingest", "run_query", "run_report", "run_weekly"]
__version__ = "0.1.0"
