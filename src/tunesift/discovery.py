"""Registries fill themselves: a method or selector class registers itself when its module is imported, so
a registry imports every module of its package once before it is read."""

from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.cache
def import_submodules(package: str) -> None:
    """Import every module of ``package`` (once per process)."""
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
