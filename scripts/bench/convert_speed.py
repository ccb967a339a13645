"""Benchmark: our converter against `spacy convert -c ner` on a synthetic CoNLL-2003-style file.

    python -m scripts.bench_convert --tokens 200000

Each converter runs in a child process; wall time and peak RSS come from os.wait4 on that child.
Ours is also run on twice the tokens, to show its memory stays flat.
"""

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.common.files import PROJECT_ROOT

ROOT = PROJECT_ROOT
WORDS = "the of to in said on for EU rejects German call boycott British lamb . , Peter Blackburn BRUSSELS 1996-08-22 Commission".split()
LABELS = ("PER", "ORG", "LOC", "MISC")
# spaCy's ner converter splits documents only on this exact line (the real CoNLL-2003 files use
# `-DOCSTART- -X- -X- O`, which it reads as one huge document: minutes instead of seconds).
DOCSTART = "-DOCSTART- -X- O O"


def write_conll(path: Path, *, tokens: int, seed: int = 0) -> int:
    """CoNLL-2003 layout (TOKEN POS CHUNK NER, IOB1 tags, documents of 5-30 sentences)."""
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf8") as out:
        while written < tokens:
            out.write(f"{DOCSTART}\n\n")
            for _ in range(rng.randint(5, 30)):
                previous = "O"
                for _ in range(rng.randint(5, 40)):
                    tag = "O"
                    if rng.random() < 0.15:
                        label = rng.choice(LABELS)
                        tag = ("B-" if previous[2:] == label else "I-") + label
                    out.write(f"{rng.choice(WORDS)} NNP I-NP {tag}\n")
                    previous = tag
                    written += 1
                out.write("\n")
    return written


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(
                f"{' '.join(command)} failed: {errors.read().decode(errors='replace')[-2000:]}"
            )
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def ours(source: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scripts.convert",
        str(source),
        "--output",
        str(output),
        "--format",
        "conll",
    ]


def spacys(source: Path, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "spacy",
        "convert",
        str(source),
        str(output_dir),
        "--converter",
        "ner",
    ]


def same_annotation(a: Path, b: Path) -> bool:
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    def flat(path: Path) -> tuple[list[str], list[tuple[int, int, str]]]:
        words, ents, offset = [], [], 0
        for doc in DocBin().from_disk(path).get_docs(Vocab()):
            words.extend(t.text for t in doc)
            ents.extend((offset + e.start, offset + e.end, e.label_) for e in doc.ents)
            offset += len(doc)
        return words, ents

    return flat(a) == flat(b)
