"""Registry incident workbench: evidence from registries, proxies, databases and hosts in one case store."""

from .case import Case
from .errors import WorkbenchError
from .ingest.pipeline import IngestSummary, ingest
from .query import run_query

__all__ = ["Case", "WorkbenchError", "IngestSummary", "ingest", "run_query"]
__version__ = "0.1.0"
