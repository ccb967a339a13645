"""Hyperparameter search over the training recipe (the code behind scripts/tune.py): the search
space (space.py), one trial (trial.py), the study and its engines (search.py, ray_engine.py) and
the report (report.py)."""
