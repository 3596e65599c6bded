"""Decontamination against evaluation sets (METHODS.md §23): how much of an evaluation item a user turn covers.

Words are ``re.findall(r"\\w+", text.lower())``. The coverage of an item E (tokens e_1..e_m) by a user turn U is the
share of E's positions that lie inside some n-gram of E that also occurs in U; an item shorter than n covers U only
when U's words are exactly E's. Tulu 3's rule drops a sample whose best coverage is strictly above 0.5 (n = 8);
``any`` mode drops one that shares any n-gram (datatrove, lm-evaluation-harness).

The evaluation side is small: its words get ids and its n-grams' keys go into one sorted array. The pool is
streamed a chunk of turns at a time: a word no item has breaks every n-gram it is in, the rest are keyed in one
vectorised pass and looked up by binary search, and only a turn that hits an item is compared with it exactly
(:func:`coverage`, which is also the test's one-turn reference). Nothing grows with the pool but the matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WORD = re.compile(r"\w+")
MODES = ("tulu", "any")
#: n per mode unless told: Tulu 3's 8-grams; 13-grams for ``any`` (lm-evaluation-harness's janitor, METHODS §23).
DEFAULT_N = {"tulu": 8, "any": 13}
DEFAULT_THRESHOLD = 0.5
_MIX = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit multiplier: the rolling key of a word-id n-gram


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def coverage(item: Sequence[str], turn: Sequence[str], n: int) -> float:
    """The share of ``item``'s words inside an n-gram of ``item`` that ``turn`` also holds (METHODS.md §23)."""
    m = len(item)
    if m == 0:
        return 0.0
    if m < n:
        return 1.0 if list(item) == list(turn) else 0.0
    grams = {tuple(turn[i : i + n]) for i in range(len(turn) - n + 1)}
    covered = bytearray(m)
    for start in range(m - n + 1):
        if tuple(item[start : start + n]) in grams:
            covered[start : start + n] = b"\x01" * n
    return sum(covered) / m


def _keys(ids: np.ndarray, n: int) -> np.ndarray:
    """The rolling 64-bit key of every n-gram of ``ids`` (length len - n + 1), wrapping on overflow."""
    values = ids.astype(np.uint64) + np.uint64(1)
    keys = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            keys = keys * _MIX + values[k : k + len(keys)]
    return keys


@dataclass(frozen=True)
class Hit:
    """A user turn's best match: the item (its position in the index), that item's coverage, and the turn."""

    item: int
    coverage: float
    turn: int


class EvalIndex:
    """The n-grams of a list of evaluation items' words, for looking up a pool's user turns (see the module)."""

    def __init__(self, texts: Sequence[str], n: int) -> None:
        self.n = n
        self.tokens = [words(t) for t in texts]
        self.vocab: dict[str, int] = {}
        for toks in self.tokens:
            for w in toks:
                self.vocab.setdefault(w, len(self.vocab))
        keys, owners = [], []
        self.short: dict[tuple[str, ...], list[int]] = {}
        for number, toks in enumerate(self.tokens):
            if len(toks) >= n:
                mine = np.unique(_keys(np.array([self.vocab[w] for w in toks], dtype=np.int64), n))
                keys.append(mine)
                owners.append(np.full(len(mine), number, dtype=np.int32))
            elif toks:
                self.short.setdefault(tuple(toks), []).append(number)
        all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        all_owners = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32)
        order = np.argsort(all_keys, kind="stable")
        self.keys, self.owners = all_keys[order], all_owners[order]

    @property
    def n_grams(self) -> int:
        return len(self.keys)

    def candidates(self, turns: Sequence[Sequence[str]]) -> list[set[int]]:
        """Per turn, the items that share a key with it (an exact check follows), in one vectorised pass."""
        found: list[set[int]] = [set(self.short.get(tuple(t), ())) for t in turns]
        n = self.n
        lengths = np.fromiter((len(t) for t in turns), dtype=np.int64, count=len(turns))
        if not len(self.keys) or not lengths.size or lengths.max(initial=0) < n:
            return found
        get = self.vocab.get
        ids = np.fromiter((get(w, -1) for t in turns for w in t), dtype=np.int64, count=int(lengths.sum()))
        ends = np.cumsum(lengths)
        keys = _keys(np.where(ids < 0, 0, ids), n)
        unknown = np.concatenate([[0], np.cumsum(ids < 0)])
        starts = np.arange(len(keys))
        owner_turn = np.searchsorted(ends, starts, side="right")  # the turn each n-gram starts in
        inside = starts + n <= ends[np.minimum(owner_turn, len(ends) - 1)]
        known = unknown[starts + n] - unknown[starts] == 0  # every word of the n-gram is an evaluation word
        keep = np.flatnonzero(inside & known)
        if not keep.size:
            return found
        left = np.searchsorted(self.keys, keys[keep], side="left")
        right = np.searchsorted(self.keys, keys[keep], side="right")
        for position in np.flatnonzero(right > left):
            turn = int(owner_turn[keep[position]])
            found[turn].update(self.owners[left[position] : right[position]].tolist())
        return found

    def best(self, turns: Sequence[Sequence[str]], candidates: Sequence[set[int]]) -> Hit | None:
        """The best exact coverage over ``turns`` (one sample's) of the items each turn hit; None when none."""
        best: Hit | None = None
        for t, items in enumerate(candidates):
            for item in sorted(items):
                c = coverage(self.tokens[item], turns[t], self.n)
                if c > 0 and (best is None or c > best.coverage):
                    best = Hit(item, c, t)
        return best


def contaminated(hit: Hit | None, mode: str, threshold: float | None) -> bool:
    """Tulu 3: coverage strictly above ``threshold``; ``any``: a shared n-gram (any coverage at all)."""
    if hit is None:
        return False
    return hit.coverage > threshold if mode == "tulu" else hit.coverage > 0
