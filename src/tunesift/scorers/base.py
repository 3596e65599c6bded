"""The scorer contract: what every method's per-sample work looks like, wherever it runs.

A :class:`Scorer` holds parameters only (set in its constructor, no model loaded there), so it can be
pickled and rebuilt on any worker, as scikit-learn's estimators and data-juicer's operators are. Its work
splits into four pure steps that an executor (in-process, or a Ray cluster) drives:

* ``cache_config()``: everything a result depends on (parameters, model fingerprint, version); the key of
  the score store, identical whichever executor computes the results;
* ``units(sample)``: what is computed and cached (a sample, or one rating text per prompt and turn);
* ``compute(units, backend)``: the batched work, no I/O and no store; one result dict per unit;
* ``combine(sample, results)``: the sample's row from its units' results (turn rules, levels).

A unit whose computation raises gets :meth:`Scorer.failure` (null values and the reason, never a default),
which is reported but not cached, so a later run tries it again; the store refuses any row that stands in place
of a value (a ``skip_reason`` of any kind), so no failure is ever remembered as a result.

A **method** (:class:`Method`) is what a user names: ``tunesift score ifd``. Its class declares its name,
columns, subset fields, default selection rule and options, and registers itself when it is defined (as
NeMo Curator's stages and data-juicer's operators do), so the CLI, the Python API, the recipes and the
conformance suite find it with no other file edited. The driver (:mod:`tunesift.execution.driver`) runs
every method through the same hooks: :meth:`Method.build` (options -> a configured method, models resolved),
:meth:`Method.stages` (the per-unit scorers to run; a plain scorer is its own one stage), :meth:`Method.row`
(a sample's row from its units' results) and :meth:`Method.finish` (a pool-level step over all rows).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tunesift.data.sample import Sample
from tunesift.errors import ConfigError
from tunesift.options import Option, check_values

Progress = Callable[[float], None] | None

#: Every registered method by its name, in the order their modules define them.
METHODS: dict[str, type[Method]] = {}


@dataclass
class PoolContext:
    """What a pool-level hook may use: where scores are stored, the executor, the progress setting,
    ``embed`` (MiniLM vectors of the pool's valid samples, in pool order, cached in the store), ``compute``
    (a stage's cached results for other samples, a query set's: what the store lacks is computed by the
    executor), ``vectors`` (a stage's stored vectors, memory-mapped: row ``r`` for a result holding ``r``) and
    ``score`` (another configured method over some of the pool's samples, through the same store and executor:
    its table, and how many of its units were computed and how many the store already held:
    ``{"computed": n, "reused": m}``)."""

    store_dir: Any
    executor: Any
    progress: bool
    embed: Callable[[Any], Any]
    compute: Callable[[Scorer, Any], dict[str, dict[str, Any]]] | None = None
    vectors: Callable[[Scorer], Any] | None = None
    score: Callable[[Method, Any], tuple[Any, dict[str, int]]] | None = None


#: Reasons a sample itself cannot be scored (it holds no text, it does not fit the model): a skip, counted and
#: reported, never a failure of the method (a run where every sample is such a skip has failed nothing).
NO_TEXT = "no_text"
TOO_LONG = "too_long_for_context"
SAMPLE_SKIPS = frozenset(
    {
        NO_TEXT,
        TOO_LONG,
        "empty_response",
        "no_reference",
        "no_gold",
        "unclosed_think",
        "empty_final",
        "no_thinking",
        "no_label_tokens",
    }
)


class Method:
    """A named method: its declarations, and the hooks the driver calls to score a pool with it.

    A subclass that sets ``method`` in its own body is registered under that name. ``columns`` are what
    recipe steps may name; ``subset_columns`` the fields a subset record gets (the first is ranked by);
    ``default_rule`` what ``tunesift select`` applies to it; ``needs`` a column that only exists with an
    option (InstructMining's ``instructmining`` needs ``rule``).
    """

    method: ClassVar[str]
    summary: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()
    subset_columns: ClassVar[tuple[str, ...]] = ()
    default_rule: ClassVar[str] = "top"
    options: ClassVar[tuple[Option, ...]] = ()
    needs: ClassVar[dict[str, str]] = {}
    #: The method reads the response: a sample whose response is empty is skipped, with one reason for all.
    needs_response: ClassVar[bool] = True
    #: The score at or above which the method's own recipe keeps a sample (a judge's 4.5), if it keeps by one:
    #: what a distilled head's figures are measured at unless the user names a threshold (METHODS.md §22).
    pass_threshold: ClassVar[float | None] = None
    #: What a column that is not a number holds: "text" (compared with words: ``lang in [en]``), "list" (a
    #: sample's tags or kinds), "mapping" (a score per query task) or "bool"; every other column is a number.
    column_kinds: ClassVar[dict[str, str]] = {}

    @classmethod
    def column_kind(cls, column: str) -> str:
        """What ``column`` holds: "number", "text", "list", "mapping" or "bool"."""
        if column.endswith("_by_query"):
            return "mapping"
        return cls.column_kinds.get(column, "number")

    @classmethod
    def subset_facts(cls, config: dict[str, Any], rows: Sequence[dict[str, Any]], indices: Sequence[int]) -> dict[
            str, Any]:  # fmt: skip
        """What a subset's manifest adds about the rows at ``indices`` of a table this method made with ``config``
        (``length``: the share the training length cuts); nothing by default."""
        return {}

    @classmethod
    def column_values(cls, column: str) -> frozenset[str] | None:
        """Every value a text column can hold, where the method knows them (langid's codes); None otherwise."""
        return None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "method" in cls.__dict__:
            if not cls.subset_columns:
                cls.subset_columns = cls.columns
            METHODS[cls.method] = cls

    @classmethod
    def score_field(cls) -> str:
        """The column a subset is ranked by."""
        return cls.subset_columns[0]

    @classmethod
    def check(cls, options: dict[str, Any], where: str | None = None) -> dict[str, Any]:
        """Every option's value (given ones type-checked, the rest their defaults); unknown ones refused."""
        return check_values(cls.options, options, where or f"method {cls.method!r}")

    @classmethod
    def files_read(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The files ``values`` of this method's options name for reading (a query set, anchors, a rule), by flag:
        what a command must never overwrite."""
        from tunesift.files import option_inputs

        return option_inputs(cls.options, values)

    @classmethod
    def build(cls, pool: Any, executor: Any, **options: Any) -> Method:
        """The configured method for ``pool`` (models resolved where ``executor`` runs); options are checked."""
        raise NotImplementedError(f"{cls.__name__} does not say how it is built")

    def stages(self) -> Sequence[Scorer]:
        """The per-unit scorers the driver runs, in order (a scorer is its own one stage)."""
        assert isinstance(self, Scorer)
        return (self,)

    def row(self, sample: Sample, results: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
        """A sample's row from each stage's results for its units (default: the one stage's ``combine``)."""
        assert isinstance(self, Scorer)
        return self.combine(sample, results[0])

    def finish(self, pool: Any, rows: list[dict[str, Any]], context: PoolContext) -> None:
        """A pool-level step over every row, in place (INSTAG's normalisation, InstructMining's kNN)."""

    def table_config(self) -> dict[str, Any]:
        """The configuration a score table records (default: the one stage's cache key)."""
        return self.stages()[0].cache_config()

    def ranked_by(self) -> str:
        """The column this configured method ranks by (a method whose columns depend on its options overrides)."""
        return self.score_field()

    def table_columns(self) -> tuple[str, ...]:
        return self.subset_columns


def get_method(name: str) -> type[Method]:
    """The registered method ``name`` (every module of :mod:`tunesift.scorers` is imported first)."""
    from tunesift.scorers import discover

    discover()
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError("scorer", f"unknown scorer {name!r}; choose one of {', '.join(METHODS)}") from None


@dataclass(frozen=True)
class Unit:
    """One cached computation: ``key`` is its cache key, ``payload`` what :meth:`Scorer.compute` reads."""

    key: str
    payload: Any


class Scorer(Method, ABC):
    """One method's per-unit computation over one backend (a causal LM, an embedder, a judge endpoint)."""

    #: Name of the store files and of the ``scorer`` field of the cache configuration.
    name: ClassVar[str]
    #: The fields of one unit's result (a failure sets every one of them to None).
    result_fields: ClassVar[tuple[str, ...]]
    #: What a progress bar counts.
    unit_name: ClassVar[str] = "sample"
    #: Progress callbacks count texts; a unit is this many texts (IFD: conditioned + direct).
    texts_per_unit: ClassVar[int] = 1
    #: Units computed between two writes to the store (the executor's default chunk).
    chunk_size: int = 128
    #: A result field holding a vector (base64 float32 from :meth:`compute`): the store keeps it binary,
    #: memory-mapped, and the cached result holds its row (see :func:`tunesift.execution.driver.gather_vectors`).
    vector_field: ClassVar[str | None] = None

    @abstractmethod
    def cache_config(self) -> dict[str, Any]:
        """The configuration a unit's result depends on: the store key (stable across processes)."""

    def units(self, sample: Sample) -> list[Unit]:
        """The units of one sample, in the order :meth:`combine` expects their results (default: the sample
        itself, keyed by its content)."""
        return [Unit(sample.content_id, sample)]

    @abstractmethod
    def load_backend(self, device: str | None = None) -> Any:
        """Build the backend :meth:`compute` needs (called once per worker, where the work runs)."""

    @abstractmethod
    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        """One result per unit, in order; batched; no I/O."""

    def check_ready(self) -> None:
        """Called once on the driver before the first unit is computed (never when the store holds them all):
        a scorer whose backend is a service checks it answers, so a dead endpoint is one error up front."""

    def combine(self, sample: Sample, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The sample's fields from its units' results (default: the single unit's result)."""
        return {k: results[0][k] for k in self.result_fields}

    def failure(self, reason: str) -> dict[str, Any]:
        """The result of a unit whose computation raised: every field null, the reason kept."""
        return {**dict.fromkeys(self.result_fields), "skip_reason": f"error: {reason}", "error": True}

    def cacheable(self, result: dict[str, Any]) -> bool:
        """Whether a result may be stored: the store's own rule (:func:`tunesift.store.is_result`), which it
        enforces itself; a failure of any kind is retried by a later run."""
        from tunesift.store import is_result

        return is_result(result)

    def describe(self) -> str:
        """A short label for progress bars and logs."""
        return self.name


class CausalLMScorer(Scorer):
    """A scorer whose backend is a causal LM: ``self.model`` (a resolved checkpoint) loaded on the worker."""

    model: Any  # a ResolvedModel (a checkpoint, in its dtype) or a ServedModel (on an inference server)

    def load_backend(self, device: str | None = None) -> Any:
        from tunesift.models.backend import load_lm

        return load_lm(self.model, device)


def compute_safely(
    scorer: Scorer, units: Sequence[Unit], backend: Any, on_progress: Progress = None
) -> list[dict[str, Any]]:
    """:meth:`Scorer.compute`, but a batch that raises is retried unit by unit, and a unit that still raises
    gets :meth:`Scorer.failure` with the exception: one bad sample never stops a job or takes others down.

    Errors a user must act on (:class:`~tunesift.errors.TunesiftError`) still stop the job.
    """
    from tunesift.errors import TunesiftError

    try:
        return scorer.compute(units, backend, on_progress)
    except TunesiftError:
        raise
    except Exception as err:  # any failure of the batch: isolate it below, unit by unit
        if len(units) == 1:
            return [scorer.failure(f"{type(err).__name__}: {err}")]
    results = []
    for unit in units:
        try:
            results.extend(scorer.compute([unit], backend, None))
        except TunesiftError:
            raise
        except Exception as err:  # this unit's null result, with the exception as its reason
            results.append(scorer.failure(f"{type(err).__name__}: {err}"))
        if on_progress is not None:
            on_progress(scorer.texts_per_unit)
    return results
