"""Pools, samples and prompt templates."""

from tunesift.data.pools import Pool, read_pool, write_records
from tunesift.data.sample import Sample
from tunesift.data.templates import TEMPLATE_NAMES, get_template

__all__ = ["TEMPLATE_NAMES", "Pool", "Sample", "get_template", "read_pool", "write_records"]
