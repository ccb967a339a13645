"""A training logger that also records how many words were trained on and for how long.

Used by scripts.bench_train through a config override of [training.logger]; like every
[training] setting it is resolved when training only, never when a pipeline is loaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from timeit import default_timer
from typing import IO, Any, Callable, Dict, Optional, Tuple

from spacy.language import Language
from spacy.training.loggers import console_logger
from spacy.util import registry

from scripts.common.files import write_bytes_atomic

LogStep = Callable[[Optional[Dict[str, Any]]], None]


@registry.loggers("ner_textcat.speed_logger.v1")
def speed_logger(
    path: str, progress_bar: bool = False
) -> Callable[..., Tuple[LogStep, Callable[[], None]]]:
    """The console log, plus {"words", "seconds", "steps", "epochs"} written to `path` at the
    end."""
    console = console_logger(progress_bar=progress_bar)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        start = default_timer()
        last: Dict[str, Any] = {}

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if info is not None:
                last.update(
                    words=info["words"],
                    steps=info["step"],
                    epochs=info["epoch"],
                    seconds=default_timer() - start,
                )
            log_console(info)

        def finalize() -> None:
            finalize_console()
            write_bytes_atomic(Path(path), (json.dumps(last) + "\n").encode("utf8"))

        return log_step, finalize

    return setup
