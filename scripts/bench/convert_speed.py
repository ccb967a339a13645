"""Timing our converter against `spacy convert -c ner` on a synthetic CoNLL-2003-style file.

compare_converters(tokens=200_000).table()   # -> a table of seconds, tokens/s and peak MB

Each converter runs in a child process; wall time and peak RSS come from os.wait4 on that child.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.common.files import PROJECT_ROOT

WORDS = (
    "the of to in said on for EU rejects German call boycott British lamb . , "
    "Peter Blackburn BRUSSELS 1996-08-22 Commission"
).split()
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


@dataclass(frozen=True)
class Measurement:
    seconds: float  # wall
    cpu_seconds: float  # user + system: what a busy machine changes least
    peak_mb: float


def measure(command: list[str]) -> Measurement:
    """Wall and CPU seconds and peak RSS (MB) of a child process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(
                f"{' '.join(command)} failed: {errors.read().decode(errors='replace')[-2000:]}"
            )
    # ru_maxrss is in KB on Linux
    return Measurement(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def best_of(command: list[str], *, repeat: int) -> Measurement:
    """The fastest of `repeat` runs (the least disturbed by other work), with the highest peak."""
    runs = [measure(command) for _ in range(repeat)]
    return Measurement(
        min(run.seconds for run in runs),
        min(run.cpu_seconds for run in runs),
        max(run.peak_mb for run in runs),
    )


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
        words: list[str] = []
        ents: list[tuple[int, int, str]] = []
        offset = 0
        for doc in DocBin().from_disk(path).get_docs(Vocab()):
            words.extend(t.text for t in doc)
            ents.extend((offset + e.start, offset + e.end, e.label_) for e in doc.ents)
            offset += len(doc)
        return words, ents

    return flat(a) == flat(b)


@dataclass(frozen=True)
class Run:
    """One converter on one file."""

    name: str
    tokens: int
    measured: Measurement


@dataclass(frozen=True)
class Comparison:
    ours: Run
    spacy: Run
    ours_twice: Run  # ours on twice the tokens: how memory grows with the input
    same_annotation: bool  # both outputs hold the same tokens and entities

    def table(self) -> str:
        lines = [
            f"{'converter':<22}{'tokens':>10}{'seconds':>10}{'tokens/s':>12}"
            f"{'CPU s':>10}{'peak MB':>10}"
        ]
        for run in (self.ours, self.spacy, self.ours_twice):
            m = run.measured
            lines.append(
                f"{run.name:<22}{run.tokens:>10}{m.seconds:>10.2f}"
                f"{run.tokens / m.seconds:>12,.0f}{m.cpu_seconds:>10.2f}{m.peak_mb:>10.1f}"
            )
        ours, spacy = self.ours.measured, self.spacy.measured
        lines.append(
            f"throughput ours/spaCy: {spacy.seconds / ours.seconds:.1f}x (goal >= 3x; "
            f"by CPU time {spacy.cpu_seconds / ours.cpu_seconds:.1f}x); "
            f"peak memory ours/spaCy: {ours.peak_mb / spacy.peak_mb:.2f} (goal <= 0.5)"
        )
        lines.append(
            f"our peak at 2x tokens: {self.ours_twice.measured.peak_mb:.1f} MB "
            f"vs {ours.peak_mb:.1f} MB; same tokens and entities as spaCy: "
            f"{self.same_annotation}"
        )
        return "\n".join(lines)


def compare_converters(*, tokens: int, repeat: int = 1) -> Comparison:
    """Both converters on one synthetic file, ours also on one twice as long; each run `repeat`
    times, the fastest run counted."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        n = write_conll(tmp / "bench.conll", tokens=tokens)
        ours_run = best_of(ours(tmp / "bench.conll", tmp / "ours.spacy"), repeat=repeat)
        spacy_run = best_of(spacys(tmp / "bench.conll", tmp), repeat=repeat)
        n2 = write_conll(tmp / "bench2.conll", tokens=2 * tokens, seed=1)
        twice_run = best_of(ours(tmp / "bench2.conll", tmp / "ours2.spacy"), repeat=repeat)
        same = same_annotation(tmp / "ours.spacy", tmp / "bench.spacy")
    return Comparison(
        ours=Run("ours", n, ours_run),
        spacy=Run("spacy convert -c ner", n, spacy_run),
        ours_twice=Run("ours, 2x tokens", n2, twice_run),
        same_annotation=same,
    )
