#!/usr/bin/env python3
"""Python spaCy throughput on the golden corpus texts (the baseline for
crates/spacy-native/benches/ner_throughput.rs). Single-threaded: run with OMP_NUM_THREADS=1 and
friends (scripts/bench-ner sets them).

Usage: python_ner.py MODEL_DIR GOLDEN_DIR [SECONDS]
Prints `end_to_end: python_tokens_per_s=<x>` (tokenizer + ner),
`tagger_parser: python_tokens_per_s=<x>` (tokenizer + tok2vec + tagger +
parser + ner) and `full_pipeline: python_tokens_per_s=<x>` (every component
of the package: also attribute_ruler and lemmatizer; senter is disabled).
"""
import glob
import json
import os
import sys
import time

import spacy


def main() -> None:
    model_dir, golden_dir = sys.argv[1:3]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    texts = []
    for path in sorted(glob.glob(os.path.join(golden_dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            text = json.load(f).get("text")
        if isinstance(text, str) and text not in texts:
            texts.append(text)
    if not texts:
        sys.exit(f"python_ner: no texts in {golden_dir}")
    nlp = spacy.load(model_dir, exclude=["tok2vec", "tagger", "parser", "senter",
                                         "attribute_ruler", "lemmatizer"])
    assert nlp.pipe_names == ["ner"], nlp.pipe_names
    n_tokens = measure(nlp, texts, 0.0)[0]  # also the warm-up
    print(f"corpus: {len(texts)} texts, {n_tokens} tokens")
    print(f"end_to_end: python_tokens_per_s={measure(nlp, texts, seconds)[1]:.0f}")
    nets = spacy.load(model_dir, exclude=["senter", "attribute_ruler", "lemmatizer"])
    assert nets.pipe_names == ["tok2vec", "tagger", "parser", "ner"], nets.pipe_names
    measure(nets, texts, 0.0)
    print(f"tagger_parser: python_tokens_per_s={measure(nets, texts, seconds)[1]:.0f}")
    full = spacy.load(model_dir)
    assert full.pipe_names == ["tok2vec", "tagger", "parser", "attribute_ruler",
                               "lemmatizer", "ner"], full.pipe_names
    measure(full, texts, 0.0)
    print(f"full_pipeline: python_tokens_per_s={measure(full, texts, seconds)[1]:.0f}")


def measure(nlp, texts, seconds):
    """(tokens of one pass, tokens per second over at least one pass)."""
    n_tokens = 0
    done = 0
    start = time.perf_counter()
    while True:
        for doc in nlp.pipe(texts):
            done += len(doc)
        if not n_tokens:
            n_tokens = done
        if time.perf_counter() - start >= seconds:
            break
    return n_tokens, done / (time.perf_counter() - start)

if __name__ == "__main__":
    main()
