"""Pools, samples and prompt templates."""

from tunesift.data.pools import SCHEMAS, Pool, read_pool, record_to_sample, write_records
from tunesift.data.sample import Rejected, Sample, Turn
from tunesift.data.templates import TEMPLATE_NAMES, get_template

__all__ = [
    "SCHEMAS",
    "TEMPLATE_NAMES",
    "Pool",
    "Rejected",
    "Sample",
    "Turn",
    "get_template",
    "read_pool",
    "record_to_sample",
    "write_records",
]
