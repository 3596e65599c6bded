"""``tunesift advise``: race the selection methods on a proxy of the user's own pool and recommend one.

:mod:`.config` (what the race runs, and the checks before any work), :mod:`.arms` (the menu), :mod:`.plan` (the
plan and its measured cost), :mod:`.rule` (the verdict: by the size of the gain, guards, stability),
:mod:`.advice` (advice.md) and :mod:`.run` (the whole of it)."""
