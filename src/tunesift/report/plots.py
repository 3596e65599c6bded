"""Figures of a report, as PNG bytes: matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def score_histogram(score: dict[str, Any]) -> bytes:
    """Histogram of one score column with each selection's cut marked."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    edges, counts = score["histogram"]["edges"], score["histogram"]["counts"]
    if counts:
        widths = [b - a for a, b in pairwise(edges)]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#9db4d6", edgecolor="#4c72b0", linewidth=0.5)
    for k, cut in enumerate(score["cuts"]):
        ax.axvline(cut["cut"], color=COLORS[(k + 1) % len(COLORS)], linestyle="--", linewidth=1.6,
                   label=f"cut of {cut['selection']}: {cut['cut']:.3g}")  # fmt: skip
    if score["field"] == "ifd":
        ax.axvline(1.0, color="#444", linestyle=":", linewidth=1, label="IFD = 1")
    ax.set_title(f"{score['label']}: {score['n_scored']} scored, {score['n_skipped']} skipped")
    ax.set_xlabel(f"{score['field']} score")
    ax.set_ylabel("samples")
    if score["cuts"] or score["field"] == "ifd":
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: never over a bar
    return _png(fig)


def length_boxes(groups: list[dict[str, Any]]) -> bytes:
    """Instruction and response lengths, in tokens and characters, pool vs each selection."""
    panels = [
        ("instruction_tokens", "Instruction length", "tokens"),
        ("response_tokens", "Response length", "tokens"),
        ("instruction_chars", "Instruction length", "characters"),
        ("response_chars", "Response length", "characters"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.2))
    labels = [g["label"] for g in groups]
    for ax, (key, title, unit) in zip(axes.flat, panels, strict=True):
        data = [g["_lengths"][key] or [0] for g in groups]
        box = ax.boxplot(data, patch_artist=True, showfliers=False)
        for patch, color in zip(box["boxes"], COLORS, strict=False):
            patch.set_facecolor(color)
            patch.set_alpha(0.55)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=15, fontsize=8)
        ax.set_title(f"{title} ({unit})", fontsize=10)
        ax.set_ylabel(unit)
    fig.suptitle("Lengths: pool vs selections (boxes: quartiles; whiskers: 1.5 IQR)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def composition_bars(groups: list[dict[str, Any]]) -> bytes:
    """Share of samples with an input and share of calculation tasks, per group."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    labels = [g["label"] for g in groups]
    width = 0.38
    xs = range(len(labels))
    for offset, key, name, color in (
        (-width / 2, "share_with_input", "has an input", COLORS[0]),
        (width / 2, "share_calculation", "calculation task", COLORS[1]),
    ):
        values = [100 * (g[key] or 0) for g in groups]
        bars = ax.bar([x + offset for x in xs], values, width, label=name, color=color)
        ax.bar_label(bars, fmt="%.0f%%", fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=10, fontsize=8)
    ax.set_ylabel("share of samples (%)")
    ax.set_title("Composition: pool vs selections")
    ax.legend(fontsize=8)
    ax.set_ylim(0, max(10, ax.get_ylim()[1] * 1.15))
    return _png(fig)


def source_mix_bars(groups: list[dict[str, Any]]) -> bytes | None:
    """Stacked shares of the source field, when the pool has one."""
    if not groups or groups[0]["source_mix"] is None:
        return None
    sources = list(groups[0]["source_mix"])
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    bottoms = [0.0] * len(groups)
    for k, source in enumerate(sources):
        values = [100 * (g["source_mix"] or {}).get(source, 0) for g in groups]
        ax.bar([g["label"] for g in groups], values, bottom=bottoms, label=source, color=COLORS[k % len(COLORS)])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("share of samples (%)")
    ax.set_title(f"Source mix ('{groups[0]['source_field']}' field)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _png(fig)


def matrix_heatmap(labels: list[str], matrix: list[list[float | None]], title: str, vmin: float) -> bytes:
    """A labelled heatmap with the value written in each cell."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * n, 1.2 + 0.9 * n))
    values = [[float("nan") if v is None else v for v in row] for row in matrix]
    image = ax.imshow(values, vmin=vmin, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), labels, rotation=25, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            value = matrix[i][j]
            text = "n/a" if value is None else f"{value:.2f}"
            bright = value is not None and (value - vmin) / (1 - vmin) > 0.6  # viridis turns yellow up there
            ax.text(j, i, text, ha="center", va="center", color="black" if bright else "white", fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _png(fig)
