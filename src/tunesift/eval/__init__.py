"""Prove a selection: fine-tune on it (:mod:`.train`), evaluate the tuned models (:mod:`.metrics`), compare
with random subsets of the same size and the full pool (:mod:`.compare`)."""
