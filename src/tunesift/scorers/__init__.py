"""Per-sample scorers."""

from tunesift.scorers.ifd import IFDConfig, IFDScore, IFDScorer

__all__ = ["IFDConfig", "IFDScore", "IFDScorer"]
