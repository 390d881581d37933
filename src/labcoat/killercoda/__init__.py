"""Killercoda: export a lab as a scenario (`lab export killercoda`), import a scenario as a lab
(`lab import killercoda`). The format itself is read and validated in `format`."""
