"""Scores from gold and predicted Docs (metrics.py, pure functions) and the report that shows
them; loading a trained pipeline and reading what it predicts (model.py, shared with inference);
running a pipeline on a test split; comparing two runs."""
