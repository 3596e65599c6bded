"""tunesift: pick the best instruction-tuning data out of a large pool."""

from tunesift._version import __version__
from tunesift.api import (
    METHODS,
    ScoreTable,
    decontaminate,
    read_scores,
    run,
    run_recipe,
    score,
    score_ifd,
    score_selectit,
    select,
    write_scores,
    write_subset,
)
from tunesift.data import Pool, Sample, read_pool, write_records
from tunesift.selectors import Budget, Selection

__all__ = [
    "METHODS",
    "Budget",
    "Pool",
    "Sample",
    "ScoreTable",
    "Selection",
    "__version__",
    "decontaminate",
    "read_pool",
    "read_scores",
    "run",
    "run_recipe",
    "score",
    "score_ifd",
    "score_selectit",
    "select",
    "write_records",
    "write_scores",
    "write_subset",
]
