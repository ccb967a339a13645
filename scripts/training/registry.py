"""Registers every function a training config of this project names: import it before spaCy reads one.

    import scripts.training.registry  # noqa: F401

[corpora.train] names the training reader (training_corpus), [training.batcher] the batcher of
text classification alone (batchers), [initialize.before_init] the text classifiers' training
callback (textcat_training), [training.optimizer] the optimizer (optimizers); scripts.bench_train
asks for the logger (training_log). Loading a trained pipeline needs none of them.
"""

import scripts.training.batchers  # noqa: F401
import scripts.training.corpus_reader  # noqa: F401
import scripts.training.logger  # noqa: F401
import scripts.training.optimizers  # noqa: F401
import scripts.training.textcat  # noqa: F401
