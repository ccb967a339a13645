"""report.html opened in headless Chromium: it renders, shows its figures and logs nothing to the
console.

The page forbids every network load (Content-Security-Policy), so a script, font or image by URL
would show up here as a console error. Skipped only when no Chromium is installed.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest
import spacy
from PIL import Image
from spacy.tokens import Doc

from scripts.evaluation.report import BAR_COLOURS, GOLD_COLOURS, PRED_COLOURS, render_report
from scripts.scoring.metrics import Tasks, evaluate_docs

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught|Refused to")
NLP = spacy.blank("en")


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")


def run_browser(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=90)


def doc(text: str, ents: List[tuple] = (), cats: dict = None, annotated: bool = True) -> Doc:
    d = NLP(text)
    if annotated:
        spans = [
            d.char_span(text.index(s), text.index(s) + len(s), label=label) for s, label in ents
        ]
        d.set_ents(spans, default="outside")
    d.cats = dict(cats or {})
    return d


def explanation(text: str, labels: dict) -> dict:
    """What scripts.evaluation.explain gives for a text: a weight per whitespace word here."""
    words, start = [], 0
    for word in text.split():
        start = text.index(word, start)
        words.append({"start": start, "end": start + len(word), "text": word})
        start += len(word)
    return {
        "text": text,
        "cats": {label: sum(weights) for label, weights in labels.items()},
        "labels": {
            label: [{**w, "weight": x} for w, x in zip(words, weights)]
            for label, weights in labels.items()
        },
        "base": {label: 0.0 for label in labels},  # SHAP: the weights add up to cats - base
        "method": "shap",
        "evals": 10,
    }


def write_report(tmp_path: Path, *, exclusive: bool, explain: bool = False) -> Path:
    golds = [
        doc(
            "Alice met Bob in Paris <script>alert(1)</script>.",
            [("Alice", "PER"), ("Bob", "PER"), ("Paris", "LOC")],
        ),
        doc("Acme hired Carol.", [("Carol", "PER")]),
        doc("I love it & more.", cats={"POS": 1.0, "NEG": 0.0}, annotated=False),
        doc("Awful.", cats={"POS": 0.0, "NEG": 1.0}, annotated=False),
        doc("Fine, I guess.", cats={"POS": 1.0, "NEG": 0.0}, annotated=False),
    ]
    preds = [
        doc(golds[0].text, [("Alice", "PER"), ("Bob", "ORG")]),
        doc(golds[1].text, [("Acme", "ORG"), ("Carol", "PER")]),
        doc(golds[2].text, cats={"POS": 0.9, "NEG": 0.1}),
        doc(golds[3].text, cats={"POS": 0.7, "NEG": 0.6}),
        doc(golds[4].text, cats={"POS": 0.3, "NEG": 0.4}),
    ]
    tasks = Tasks(
        ent_labels=("LOC", "ORG", "PER"),
        cat_labels=("POS", "NEG"),
        exclusive=exclusive,
        threshold=0.5,
    )
    evaluation = evaluate_docs(golds=golds, preds=preds, tasks=tasks)
    metrics = {
        **evaluation.metrics,
        "warnings": ["labels in test.spacy that the model does not know: X (1)"],
        "model": {
            "name": "en_tiny",
            "version": "0.0.1",
            "path": "/tmp/m",
            "pipeline": ["ner", "textcat"],
        },
        "data": {"path": "test.spacy", "sha256": "0" * 64, "n_docs": 5, "gold_preproc": False},
    }
    explanations = []
    if explain:  # for the misclassified texts, in the report's order
        errors = evaluation.details["cat_errors"]
        assert [e["text"] for e in errors] == ["Fine, I guess.", "Awful."]
        explanations = [
            explanation("Fine, I guess.", {"NEG": [0.3, -0.1, 0.2], "POS": [0.1, 0.3, -0.1]}),
            explanation("Awful.", {"POS": [0.7], "NEG": [0.6]}),
        ]
    path = tmp_path / "report.html"
    page = render_report(metrics=metrics, details=evaluation.details, explanations=explanations)
    path.write_text(page.html, encoding="utf8")
    return path


def test_long_documents_are_cropped_around_their_errors():
    text = "filler " * 300 + "Paris" + " filler" * 300
    golds, preds = [doc(text, [("Paris", "LOC")])], [doc(text)]
    evaluation = evaluate_docs(golds=golds, preds=preds, tasks=Tasks(ent_labels=("LOC",)))
    page = render_report(metrics=evaluation.metrics, details=evaluation.details).html
    example = page[page.index('<div class="example">') :]
    assert (
        "LOC · missed" in example and example.count("…") == 4
    )  # both ends, in the gold and predicted rows
    assert re.search(r"<mark[^>]*>\s*Paris\s*<span", example)  # the mark still sits on the entity
    assert example.count("filler") < 150


def test_report_without_errors_says_none():
    golds = [doc("Alice left.", [("Alice", "PER")])]
    evaluation = evaluate_docs(golds=golds, preds=golds, tasks=Tasks(ent_labels=("PER",)))
    page = render_report(metrics=evaluation.metrics, details=evaluation.details).html
    assert "documents with errors, most errors first)</h3><p>None.</p>" in page
    assert "<h2>Text classification</h2>" not in page


@pytest.mark.slow  # a headless browser
@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "multilabel"])
def test_report_renders_without_console_errors(tmp_path, exclusive):
    browser = find_browser()
    page = write_report(tmp_path, exclusive=exclusive)
    result = run_browser(browser, tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if CONSOLE.search(line)]
    assert console == [], console
    dom = result.stdout
    for text in (
        "Evaluation of en_tiny",
        "<h2>Entities</h2>",
        "<h2>Text classification</h2>",
        "LOC · missed",
        "ORG · spurious",
        "Misclassified texts",
        "does not know",
    ):
        assert text in dom, text
    assert "<script>alert" not in dom  # the document text is escaped, not run
    assert ("Confusion matrix" in dom) == exclusive and ("F by threshold" in dom) == (not exclusive)
    # per-label bars for both tasks, the confusion or threshold plot, and the reliability plot
    assert dom.count("<img ") == 4
    assert 'alt="fraction right against the score, per bin"' in dom


@pytest.mark.slow  # a headless browser
def test_report_screenshot_shows_marks_and_plots(tmp_path):
    browser = find_browser()
    page = write_report(tmp_path, exclusive=True)
    shot = tmp_path / "shot.png"
    result = run_browser(
        browser, tmp_path, "--window-size=1280,4000", f"--screenshot={shot}", page.as_uri()
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    colours = {rgb for _, rgb in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)}

    def rgb(hex_colour: str) -> tuple:
        return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))

    for painted in (GOLD_COLOURS["error"], PRED_COLOURS["error"], BAR_COLOURS[0]):
        assert rgb(painted) in colours, (
            painted
        )  # displaCy marks and the embedded PNG bars are on screen


@pytest.mark.slow  # a headless browser
def test_report_shows_the_explanations_of_misclassified_texts(tmp_path):
    browser = find_browser()
    page = write_report(tmp_path, exclusive=True, explain=True)
    result = run_browser(browser, tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if CONSOLE.search(line)]
    assert console == [], console
    dom = result.stdout
    why = dom[dom.index("Why: words behind the errors (the first 2 misclassified texts)") :]
    assert why.count('class="example why"') == 2
    assert "<b>POS</b> (predicted), score 0.700" in why and "<b>NEG</b> (gold)" in why
    marked = re.findall(
        r'<span class="w" style="background:\s*rgba\(([\d, .]+)\);?" title="([^"]+)">', why
    )
    marked = [(rgb.replace(" ", ""), title) for rgb, title in marked]
    assert ("228,26,28,0.8", "+0.7000") in marked  # the strongest word: the strongest red
    assert ("30,100,220,0.267", "-0.1000") in marked  # pushed down: blue, paler
