"""Running a pipeline on a test split (run.py) and what shows its scores: the report, explanations
of predictions, and comparing two runs. The scores themselves are scripts/scoring's."""
