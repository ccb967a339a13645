"""Nothing an annotator marked is lost: overlapping spans from Label Studio and doccano stay in
doc.spans["sc"] through conversion, merging and splitting; doc.ents, what ner trains on, gets the
longest of overlapping spans as before."""

import json
from pathlib import Path

import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from scripts.corpus.readers.spans import OVERLAP_REASON, SPAN_KEY
from tests.helpers import load_docs, run_convert


def labelstudio_export(path: Path, tasks: int = 30) -> Path:
    """Label Studio's full JSON export; each task has three spans, one of them inside another."""
    text = "Bank of England raised rates in London"
    london = text.index("London")
    spans = [(0, 15, "ORG"), (8, 15, "GPE"), (london, london + len("London"), "GPE")]
    data = [
        {
            "id": i,
            "data": {"text": f"{text} {i}"},
            "annotations": [
                {
                    "id": 100 + i,
                    "was_cancelled": False,
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "text",
                            "type": "labels",
                            "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]},
                        }
                        for s, e, label in spans
                    ],
                }
            ],
        }
        for i in range(tasks)
    ]
    path.write_text(json.dumps(data, indent=2), encoding="utf8")
    return path


def spans_of(doc) -> list[tuple[str, str]]:
    return [(span.text, span.label_) for span in doc.spans[SPAN_KEY]]


def test_overlapping_spans_survive_conversion_and_are_counted(tmp_path):
    source = labelstudio_export(tmp_path / "export.json")
    result = run_convert(source, "-o", tmp_path / "o.spacy")
    assert result.exit_code == 0, result.stderr
    assert "entities: GPE 30, ORG 30" in result.stdout
    assert f"spans in doc.spans['{SPAN_KEY}'] only, not entities: 30" in result.stdout
    assert f"Kept: 30 x {OVERLAP_REASON}" in result.stdout
    docs = load_docs(tmp_path / "o.spacy")
    assert len(docs) == 30
    for doc in docs:
        assert spans_of(doc) == [("Bank of England", "ORG"), ("England", "GPE"), ("London", "GPE")]
        assert [(e.text, e.label_) for e in doc.ents] == [
            ("Bank of England", "ORG"),
            ("London", "GPE"),
        ]


def test_spans_survive_merging_with_categories_and_the_split(tmp_path):
    source = labelstudio_export(tmp_path / "export.json")
    cats = tmp_path / "cats.csv"
    cats.write_text(
        "text,label\n" + "".join(f"text {i},{'a' if i % 2 else 'b'}\n" for i in range(30)),
        encoding="utf8",
    )
    out = tmp_path / "corpus"
    result = run_convert(source, cats, "-o", out, "--split", "0.8,0.1,0.1")
    assert result.exit_code == 0, result.stderr
    docs = [doc for name in ("train", "dev", "test") for doc in load_docs(out / f"{name}.spacy")]
    ner = [doc for doc in docs if doc.has_annotation("ENT_IOB")]
    assert len(ner) == 30 and all(len(doc.spans[SPAN_KEY]) == 3 for doc in ner)
    assert all(SPAN_KEY not in doc.spans for doc in docs if doc.cats)
    report = run_convert(
        "--train", f"{source},{cats}", "--dev", "", "--test", "", "--output-dir", out
    )
    assert report.exit_code == 0, report.stderr
    outputs = json.loads((out / "report.json").read_text())["outputs"]
    assert sum(outputs[name]["spans_only"] for name in ("train", "dev", "test")) == 30


def test_ner_trains_on_the_entities_only(tmp_path):
    source = labelstudio_export(tmp_path / "export.json", tasks=4)
    assert run_convert(source, "-o", tmp_path / "o.spacy").exit_code == 0
    nlp = spacy.blank("en")
    nlp.add_pipe("ner")
    docs = list(DocBin().from_disk(tmp_path / "o.spacy").get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    assert examples[0].get_aligned_ner()[:3] == ["B-ORG", "I-ORG", "L-ORG"]
    optimizer = nlp.initialize(lambda: examples)
    losses = nlp.update(examples, sgd=optimizer)
    assert losses["ner"] > 0
    assert sorted(nlp.get_pipe("ner").labels) == ["GPE", "ORG"]
