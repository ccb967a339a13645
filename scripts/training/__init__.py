"""Everything spaCy loads through the training config (reader, batcher, optimizer, text
classifiers, logger: see registry.py) and the steps around `spacy train`: config, labels,
threshold tuning."""
