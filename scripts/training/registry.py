"""Registers everything a training config of this project names: import it before spaCy reads one.

    import scripts.training.registry  # noqa: F401

[corpora.train] names the training reader (corpus_reader), [training.batcher] the batcher of
text classification alone (batchers), [components.textcat] and [components.textcat_multilabel]
the text classifiers' factories and scorers (textcat), [training.optimizer] the optimizer
(optimizers), [training.logger] the logger of training curves and trackers (logger). Loading a
trained pipeline needs none of them: training leaves spaCy's own factories in its config, and the
entity_confidence component (scripts/scoring/entity_confidence.py), which
scripts.scoring.pipeline registers.
"""

import scripts.training.batchers  # noqa: F401
import scripts.training.corpus_reader  # noqa: F401
import scripts.training.logger  # noqa: F401
import scripts.training.optimizers  # noqa: F401
import scripts.training.textcat  # noqa: F401
