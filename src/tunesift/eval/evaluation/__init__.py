"""Evaluating one model: the suites (:mod:`.suite`), the evaluation sets and their metrics (:mod:`.metrics`, BBH in
:mod:`.bbh`, HumanEval in :mod:`.humaneval`), paired intervals between two models (:mod:`.stats`), and pairwise
judging (:mod:`.pairwise`, :mod:`.pairwise_run`)."""
