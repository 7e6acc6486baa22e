#!/usr/bin/env python3
"""Python spaCy NER-only throughput on the golden corpus texts (the baseline
for benches/ner_throughput.rs). Single-threaded: run with OMP_NUM_THREADS=1
and friends (scripts/bench-ner sets them).

Usage: python_ner.py MODEL_DIR GOLDEN_DIR [SECONDS]
Prints `python_tokens_per_s=<x>`.
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
    n_tokens = sum(len(d) for d in nlp.pipe(texts))  # also the warm-up
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for doc in nlp.pipe(texts):
            done += len(doc)
    rate = done / (time.perf_counter() - start)
    print(f"corpus: {len(texts)} texts, {n_tokens} tokens")
    print(f"end_to_end: python_tokens_per_s={rate:.0f}")


if __name__ == "__main__":
    main()
