"""What `lab check` runs: a part's checks (pytest + testinfra) against its sandbox, scored as the lab says."""
