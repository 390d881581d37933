"""Running checks and grading submissions."""
