"""Scores from gold and predicted Docs (metrics.py, pure functions) and the report that shows
them; running a pipeline on a test split; comparing two runs."""
