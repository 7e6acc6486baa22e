"""Writes tests/learned_stance/fixtures.json: sentences, mention ranges and
the logits Python transformers computes for them with the committed adapter
merged into the base, for the Rust parity test (tests/learned_stance.rs).

    .venv-torch/bin/python training/stance/make_fixtures.py models/all-MiniLM-L6-v2 \
        data/stance-minilm-newsmtsc tests/learned_stance/fixtures.json

Deterministic: the same files give the same output, byte for byte.
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# Hand-picked: several targets in one sentence, curly quotes, accents, a
# possessive, a headline, an all-caps acronym, a target split into pieces.
EXTRA = [
    ("China firmly stands with Russia against unilateral sanctions imposed by the United States.",
     ["China", "Russia", "United States"]),
    ("“Washington’s hegemony must end,” Wang Yi told reporters in Beijing.",
     ["Washington", "Wang Yi", "Beijing"]),
    ("For all its flaws, the Paris accord is the only plan on the table that cuts emissions at all.",
     ["Paris accord"]),
    ("Critics say rent control has made São Paulo’s housing shortage worse, not better.",
     ["rent control", "São Paulo"]),
    ("NATO allies praised Zelenskyy's leadership.", ["NATO", "Zelenskyy"]),
]


def spans_of(text, names):
    out = []
    for name in names:
        i = text.find(name)
        assert i >= 0, (name, text)
        out.append((i, i + len(name)))
    return out


def main():
    base, adapter_dir, out_path = sys.argv[1:4]
    torch.set_num_threads(1)
    bert, head, manifest = common.load_merged(base, adapter_dir)
    tok = common.tokenizer(base)

    rows = [(text, spans_of(text, names)) for text, names in EXTRA]
    # The first sentences of the seeded dev split with two or more targets.
    _, dev = common.split_train_dev(
        common.read_newsmtsc("data/newsmtsc/train.jsonl"), 700, 13
    )
    multi = [e for e in dev if len(e.targets) >= 2][:8]
    rows += [(e.text, [(a, b) for a, b, _ in e.targets]) for e in multi]

    sentences = []
    for text, spans in rows:
        ex = common.Example(text, [(a, b, 1) for a, b in spans])
        items, dropped = common.encode(tok, [ex], max_pieces=512)
        assert dropped == 0 and len(items) == 1, text
        ids, targets = items[0]
        input_ids, att, index, _ = common.collate([(ids, targets)])
        logits = common.merged_logits(bert, head, input_ids, att, index)
        sentences.append({
            "text": text,
            "mentions": [list(s) for s in spans],
            "pieces": len(ids),
            "logits": [[round(float(x), 6) for x in row] for row in logits],
        })
    doc = {
        "made_by": "training/stance/make_fixtures.py (transformers, torch, one thread)",
        "adapter_sha256": manifest["adapter_sha256"],
        "temperature": manifest["temperature"],
        "sentences": sentences,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(sentences)} sentences to {out_path}")


if __name__ == "__main__":
    main()
