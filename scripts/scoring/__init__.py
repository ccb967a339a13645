"""What training, evaluation and inference all use: the scores of gold against predicted Docs
(metrics.py), the training curves' format (curves.py), loading a trained pipeline and reading what
it predicts (pipeline.py), and the entity_confidence component that scores each entity."""
