"""Registers every function a training config of this project names: import it before spaCy reads one.

    import scripts.training_functions  # noqa: F401

[corpora.train] names the training reader (training_corpus), [training.batcher] the batcher of
text classification alone (batchers), [initialize.before_init] the text classifiers' training
callback (textcat_training), [training.optimizer] the optimizer (optimizers); scripts.bench_train
asks for the logger (training_log). Loading a trained pipeline needs none of them.
"""
import scripts.batchers  # noqa: F401
import scripts.optimizers  # noqa: F401
import scripts.textcat_training  # noqa: F401
import scripts.training_corpus  # noqa: F401
import scripts.training_log  # noqa: F401
