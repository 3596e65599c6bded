"""Pools, samples and prompt templates."""

from tunesift.data.pools import Pool, read_pool, write_records
from tunesift.data.sample import Rejected, Sample, Turn
from tunesift.data.schemas import SCHEMAS, FieldMap, record_to_sample, split_trace
from tunesift.data.templates import TEMPLATE_NAMES, get_template

__all__ = [
    "SCHEMAS",
    "TEMPLATE_NAMES",
    "FieldMap",
    "Pool",
    "Rejected",
    "Sample",
    "Turn",
    "get_template",
    "read_pool",
    "record_to_sample",
    "split_trace",
    "write_records",
]
