#!/usr/bin/env python3
"""Dump the scores of every greedy NER step from Python spaCy (the oracle).

Usage: ner_scores.py MODEL_DIR TEXT_FILE NAME OUT_JSON

Writes {"name", "text", "tokens", "classes", "steps", "ents"} where every step
holds the 74 class scores the model computed for that state and the action
taken. spaCy's own step model (`ner.model.predict`) and transition code
(`ner.transition_states`) are driven one step at a time, so the scores are
exactly those that greedy decoding compares. The entities of this loop are
checked against `ner(doc).ents` before anything is written.
"""
import json
import sys

import numpy
import spacy


def main() -> None:
    model_dir, text_file, name, out_path = sys.argv[1:5]
    nlp = spacy.load(model_dir, exclude=["tok2vec", "tagger", "parser", "senter",
                                         "attribute_ruler", "lemmatizer"])
    ner = nlp.get_pipe("ner")
    text = open(text_file, encoding="utf-8").read()
    doc = nlp.make_doc(text)

    step_model = ner.model.predict([doc])
    states = ner.moves.init_batch([doc])
    classes = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
    steps = []
    while not states[0].is_final():
        b0 = states[0].B(0)
        scores = numpy.ascontiguousarray(step_model.predict(states), dtype="f")
        # 5 decimals keep the file small and stay far below the 1e-3 tolerance.
        steps.append({"b0": int(b0), "scores": [round(float(x), 5) for x in scores[0]]})
        ner.transition_states(states, scores)
    ref = ner(nlp.make_doc(text))
    ents = [{"start": e.start, "end": e.end, "start_char": e.start_char,
             "end_char": e.end_char, "label": e.label_, "text": e.text} for e in ref.ents]
    ner.set_annotations([doc], states)
    got = [(e.start, e.end, e.label_) for e in doc.ents]
    want = [(e["start"], e["end"], e["label"]) for e in ents]
    if got != want:
        sys.exit(f"step loop entities {got} differ from ner(doc) {want}")
    out = {
        "name": name,
        "text": text,
        "tokens": [{"text": t.text, "idx": t.idx, "whitespace": t.whitespace_ == " ",
                    "norm": t.norm_} for t in doc],
        "classes": classes,
        "steps": steps,
        "ents": ents,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"{out_path}: {len(doc)} tokens, {len(steps)} steps, {len(ents)} entities")


if __name__ == "__main__":
    main()
