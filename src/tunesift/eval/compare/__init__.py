"""``tunesift compare``: selections against random subsets of equal size and the full pool (:mod:`.run`), and the
tables, plots and page that show it (:mod:`.view`)."""
