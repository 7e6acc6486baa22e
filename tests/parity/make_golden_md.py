#!/usr/bin/env python3
"""Write the golden parity files of en_core_web_md 3.8.0 for a corpus subset.

Usage:
    python3 tests/parity/make_golden_md.py [MODEL_DIR]

MODEL_DIR is the pipeline directory (en_core_web_md-3.8.0). Without it the
script uses $ARTICLE_ANALYZER_MODELS/en_core_web_md-3.8.0 when that variable is
set, else models/en_core_web_md-3.8.0 under the repository root (created by
`scripts/fetch-models md`).

For each text of SUBSET (tests/parity/corpus/<name>.txt) it writes
tests/parity/golden_md/<name>.json with the schema of make_golden.py (which
it reuses): tokens and attrs, NER-only entities and the full pipeline's
sentences, tags, POS, deps, heads, lemmas and entities. crates/spacy-native/tests/parity_md.rs
checks them.
"""

import sys
from pathlib import Path

import spacy
from spacy.util import load_config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_golden import dump, make_record, model_dir  # noqa: E402

MODEL_NAME = "en_core_web_md-3.8.0"
# A small, varied subset (~10 KB): EU finance, statistics, NASA captions,
# diplomacy, an encyclopedia and old prose.
SUBSET = [
    "ec-malta-rrf-payment",
    "eurostat-flash-2018-09",
    "gutenberg-there-was-an-old-woman",
    "nasa-starliner-captions",
    "state-dept-blinken-egypt",
    "wikipedia-tokyo-fungeo",
]


def main() -> int:
    path = model_dir(MODEL_NAME)
    if not (path / "config.cfg").exists():
        print(
            f"make_golden_md: no spaCy pipeline at {path}; run scripts/fetch-models md",
            file=sys.stderr,
        )
        return 1
    pipeline = list(load_config(path / "config.cfg")["nlp"]["pipeline"])
    nlp_full = spacy.load(path)
    nlp_ner = spacy.load(path, exclude=[c for c in pipeline if c != "ner"])
    assert nlp_ner.pipe_names == ["ner"], nlp_ner.pipe_names

    out_dir = HERE / "golden_md"
    out_dir.mkdir(exist_ok=True)
    total = 0
    for name in SUBSET:
        text = (HERE / "corpus" / f"{name}.txt").read_text(encoding="utf-8")
        doc_ner = nlp_ner(text)
        doc = nlp_full(text)
        if [t.text for t in doc] != [t.text for t in doc_ner]:
            raise SystemExit(f"{name}: the two pipelines tokenized differently")
        record = make_record(name, text, doc_ner, doc, MODEL_NAME)
        (out_dir / f"{name}.json").write_text(dump(record), encoding="utf-8")
        total += len(record["tokens"])
    print(f"make_golden_md: {len(SUBSET)} texts, {total} tokens -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
