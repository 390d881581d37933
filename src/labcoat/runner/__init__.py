"""Running things in sandboxes: sessions, scenario steps, progress."""
