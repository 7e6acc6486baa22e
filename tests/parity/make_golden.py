#!/usr/bin/env python3
"""Write the golden parity files: what Python spaCy 3.8 makes of each corpus text.

Usage:
    python3 tests/parity/make_golden.py [MODEL_DIR]

MODEL_DIR is the pipeline directory (en_core_web_sm-3.8.0). Without it the
script uses $ARTICLE_ANALYZER_MODELS/en_core_web_sm-3.8.0 when that variable is
set (the same convention as the Rust tests), else models/en_core_web_sm-3.8.0
under the repository root (created by scripts/fetch-models).

For every tests/parity/corpus/<name>.txt it writes tests/parity/golden/<name>.json:

    {"name", "spacy_version", "model", "text",
     "tokens": [{"text", "idx" (code points), "whitespace", "norm", "prefix",
                 "suffix", "shape", "is_space",
                 "attrs": [NORM, PREFIX, SUFFIX, SHAPE ids, u64]}],
     "ents_ner_only": [{"start", "end", "start_char", "end_char", "label", "text"}],
     "full": {"sents": [[start_tok, end_tok]], "tag", "pos", "dep", "head",
              "lemma", "ents"}}

"ents_ner_only" comes from the pipeline loaded with every component except
"ner" excluded (tokenizer + NER, no parser sentence boundaries); "full" from
the whole pipeline, nlp(text). Requirements: tests/parity/requirements.txt.
"""

import json
import os
import sys
from pathlib import Path

import spacy
from spacy.attrs import NORM, PREFIX, SHAPE, SUFFIX
from spacy.util import load_config

MODEL_NAME = "en_core_web_sm-3.8.0"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def model_dir(name: str = MODEL_NAME) -> Path:
    """The pipeline `name`: the first argument, else under
    ARTICLE_ANALYZER_MODELS, else under the repository's models/."""
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    env = os.environ.get("ARTICLE_ANALYZER_MODELS")
    if env:
        return Path(env) / name
    return ROOT / "models" / name


def ents(doc):
    return [
        {
            "start": e.start,
            "end": e.end,
            "start_char": e.start_char,
            "end_char": e.end_char,
            "label": e.label_,
            "text": e.text,
        }
        for e in doc.ents
    ]


def dump(record) -> str:
    """One key per line and one token per line: compact, yet diffable."""
    lines = ["{"]
    items = list(record.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        if key == "tokens":
            lines.append(f'"tokens": [')
            for j, tok in enumerate(value):
                sep = "," if j + 1 < len(value) else ""
                lines.append(json.dumps(tok, ensure_ascii=False, separators=(",", ":")) + sep)
            lines.append("]" + comma)
        else:
            lines.append(
                json.dumps(key) + ": " + json.dumps(value, ensure_ascii=False, separators=(",", ":")) + comma
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def make_record(name: str, text: str, doc_ner, doc, model_name: str) -> dict:
    """The golden record of one text from its NER-only and full docs."""
    attrs = doc_ner.to_array([NORM, PREFIX, SUFFIX, SHAPE])
    tokens = [
        {
            "text": t.text,
            "idx": t.idx,
            "whitespace": bool(t.whitespace_),
            "norm": t.norm_,
            "prefix": t.prefix_,
            "suffix": t.suffix_,
            "shape": t.shape_,
            "is_space": t.is_space,
            "attrs": [int(x) for x in attrs[t.i]],
        }
        for t in doc_ner
    ]
    return {
        "name": name,
        "spacy_version": spacy.__version__,
        "model": model_name,
        "text": text,
        "tokens": tokens,
        "ents_ner_only": ents(doc_ner),
        "full": {
            "sents": [[s.start, s.end] for s in doc.sents],
            "tag": [t.tag_ for t in doc],
            "pos": [t.pos_ for t in doc],
            "dep": [t.dep_ for t in doc],
            "head": [t.head.i for t in doc],
            "lemma": [t.lemma_ for t in doc],
            "ents": ents(doc),
        },
    }


def main() -> int:
    path = model_dir()
    if not (path / "config.cfg").exists():
        print(f"make_golden: no spaCy pipeline at {path}; run scripts/fetch-models", file=sys.stderr)
        return 1
    pipeline = list(load_config(path / "config.cfg")["nlp"]["pipeline"])
    nlp_full = spacy.load(path)
    nlp_ner = spacy.load(path, exclude=[c for c in pipeline if c != "ner"])
    assert nlp_ner.pipe_names == ["ner"], nlp_ner.pipe_names

    corpus = HERE / "corpus"
    out_dir = HERE / "golden"
    out_dir.mkdir(exist_ok=True)
    names = sorted(p.stem for p in corpus.glob("*.txt"))
    total = 0
    for name in names:
        text = (corpus / f"{name}.txt").read_text(encoding="utf-8")
        doc_ner = nlp_ner(text)
        doc = nlp_full(text)
        if [t.text for t in doc] != [t.text for t in doc_ner]:
            raise SystemExit(f"{name}: the two pipelines tokenized differently")
        record = make_record(name, text, doc_ner, doc, MODEL_NAME)
        tokens = record["tokens"]
        (out_dir / f"{name}.json").write_text(dump(record), encoding="utf-8")
        total += len(tokens)
    print(f"make_golden: {len(names)} texts, {total} tokens -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
