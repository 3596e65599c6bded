"""Prove a selection, one room a job: fine-tune on it (:mod:`.training`), evaluate the tuned models on held-out
sets (:mod:`.evaluation`: the suites, their metrics and the paired statistics), compare with random subsets of the
same size and the full pool (:mod:`.compare`), and race the methods on the user's own pool (:mod:`.advise`)."""
