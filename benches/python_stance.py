"""Python transformers baseline for the learned stance model: the same
merged model (base + committed adapter) on the same NewsMTSC sentences, in
batches of 16 sentences sorted by length (what the Rust encoder does), one
thread. Prints one JSON line: word pieces per second.

    .venv-torch/bin/python benches/python_stance.py BASE ADAPTER FILE [--repeats N]
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "training", "stance"))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("adapter")
    ap.add_argument("file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bert, head, _ = common.load_merged(args.base, args.adapter)
    tok = common.tokenizer(args.base)
    items, _ = common.encode(tok, common.read_newsmtsc(args.file), max_pieces=256)
    items.sort(key=lambda x: len(x[0]))
    batches = [common.collate(items[i:i + 16]) for i in range(0, len(items), 16)]
    pieces = sum(len(ids) for ids, _ in items)
    best = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        for ids, att, index, _ in batches:
            common.merged_logits(bert, head, ids, att, index)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(json.dumps({"sentences": len(items), "pieces": pieces, "seconds": best,
                      "pieces_per_s": pieces / best}))


if __name__ == "__main__":
    main()
