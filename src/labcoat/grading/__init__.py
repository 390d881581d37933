"""Grading submissions (`lab grade`) and proving labs (`lab selftest`); what `lab check` runs is in labcoat.checking."""
