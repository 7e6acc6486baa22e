"""Trains the learned stance model on NewsMTSC and writes the adapter.

    scripts/train-stance            (sets up .venv-torch, then runs this)

Seeded and pinned (torch 2.4.0, transformers 4.44.2, scripts/python-torch-env),
CPU only. Dev is a fixed 700-sentence split of NewsMTSC train (seed 13); the
epoch and the temperature are chosen on it. devtest_rw and devtest_mt are
only scored at the end, for the report, never used to choose anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def batches(items, size, shuffle, rng):
    order = list(range(len(items)))
    if shuffle:
        rng.shuffle(order)
    for i in range(0, len(order), size):
        yield [items[j] for j in order[i : i + size]]


@torch.no_grad()
def predict(model, items, size=64):
    model.eval()
    logits, gold = [], []
    for batch in batches(items, size, False, None):
        ids, att, index, labels = common.collate(batch)
        logits.append(model(ids, att, index))
        gold.extend(labels.tolist())
    return torch.cat(logits), gold


def fit_temperature(logits: torch.Tensor, gold: list[int]) -> float:
    """The temperature that minimises dev NLL (a 1-D grid, then refined)."""
    y = torch.tensor(gold)

    def nll(t):
        return nn.functional.cross_entropy(logits / t, y).item()

    grid = [0.5 + 0.05 * k for k in range(71)]
    best = min(grid, key=nll)
    fine = [best - 0.05 + 0.005 * k for k in range(21)]
    return round(min(fine, key=nll), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with train.jsonl, devtest_*.jsonl")
    ap.add_argument("--base", required=True, help="all-MiniLM-L6-v2 directory")
    ap.add_argument("--out", required=True, help="where adapter.safetensors/json go")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--tune", choices=["lora", "full"], default="lora",
                    help="lora: low-rank adapters (--rank); full: every encoder layer "
                         "trained whole, saved as its float16 difference from the base")
    ap.add_argument("--alpha", type=float, default=32.0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--version", default="1.0.0", help="the model version the manifest gives")
    ap.add_argument("--head", choices=sorted(common.HEADS), default="mean",
                    help="mean: [t; s; t*s]; attend: also a target-attention context")
    ap.add_argument("--dev-sentences", type=int, default=700)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train sentences (0: all; for smoke runs)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    tok = common.tokenizer(args.base)
    train_ex, dev_ex = common.split_train_dev(
        common.read_newsmtsc(os.path.join(args.data, "train.jsonl")), args.dev_sentences, args.seed
    )
    if args.limit:
        train_ex = train_ex[: args.limit]
    train, dropped_train = common.encode(tok, train_ex)
    dev, dropped_dev = common.encode(tok, dev_ex)
    n_targets = sum(len(t) for _, t in train)
    print(
        f"train: {len(train)} sentences, {n_targets} targets ({dropped_train} cut off); "
        f"dev: {len(dev)} sentences, {sum(len(t) for _, t in dev)} targets ({dropped_dev} cut off)",
        flush=True,
    )

    rank = args.rank if args.tune == "lora" else 0
    model = common.StanceModel(args.base, rank, args.alpha, lora_dropout=0.1, dropout=0.1,
                               pooling=common.HEADS[args.head])
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"trainable parameters: {sum(p.numel() for p in params):,}", flush=True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train) / args.batch)
    warmup = int(0.06 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)),
    )
    loss_fn = nn.CrossEntropyLoss()
    rng = random.Random(args.seed)

    best = (-1.0, None, None)
    history = []
    started = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for batch in batches(train, args.batch, True, rng):
            ids, att, index, labels = common.collate(batch)
            loss = loss_fn(model(ids, att, index), labels)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            total += loss.item() * len(labels)
            count += len(labels)
            if step % 100 == 0:
                print(
                    f"  epoch {epoch} step {step}/{steps} loss {total / count:.4f} "
                    f"({time.time() - started:.0f} s)",
                    flush=True,
                )
        logits, gold = predict(model, dev)
        f1m, acc = common.f1m_and_accuracy(gold, logits.argmax(-1).tolist())
        history.append({"epoch": epoch, "train_loss": total / count, "dev_f1m": f1m, "dev_acc": acc})
        print(f"epoch {epoch}: train loss {total / count:.4f}, dev F1m {f1m:.4f} acc {acc:.4f} "
              f"({time.time() - started:.0f} s)", flush=True)
        if f1m > best[0]:
            best = (f1m, epoch, {k: v.clone() for k, v in common.adapter_tensors(model).items()})

    # Restore the best epoch's weights into the model (as saved).
    f1m, epoch, tensors = best
    common.restore(model, tensors)

    dev_logits, dev_gold = predict(model, dev)
    temperature = fit_temperature(dev_logits, dev_gold)
    print(f"best epoch {epoch} (dev F1m {f1m:.4f}); temperature {temperature}", flush=True)

    report = {"dev": {"f1m": f1m, "sentences": len(dev)}}
    for name in ["devtest_rw", "devtest_mt"]:
        items, dropped = common.encode(tok, common.read_newsmtsc(os.path.join(args.data, name + ".jsonl")))
        logits, gold = predict(model, items)
        f1, acc = common.f1m_and_accuracy(gold, logits.argmax(-1).tolist())
        report[name] = {"f1m": f1, "accuracy": acc, "targets": len(gold), "cut_off": dropped}
        print(f"{name}: F1m {f1:.4f}, accuracy {acc:.4f} ({len(gold)} targets, {dropped} cut off)",
              flush=True)

    meta = {
        "name": "stance-minilm-newsmtsc",
        "version": args.version,
        "temperature": temperature,
        "training": {
            "data": "NewsMTSC train.jsonl (Hamborg & Donnay, EACL 2021; MIT), "
                    f"less a {args.dev_sentences}-sentence dev split (seed {args.seed})",
            "command": "scripts/train-stance",
            "epochs": args.epochs,
            "head": args.head,
            "tune": args.tune,
            "best_epoch": epoch,
            "batch_sentences": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "seconds": round(time.time() - started),
            "history": history,
        },
        "figures": report,
    }
    common.save_adapter(model, args.out, args.base, meta)
    print(f"wrote {args.out}/adapter.safetensors and adapter.json "
          f"({os.path.getsize(os.path.join(args.out, 'adapter.safetensors')) / 1e6:.1f} MB); "
          "fit its article-level decision with `cargo run --release --example stance_fit` "
          "and add the `decision` block it prints to adapter.json", flush=True)


if __name__ == "__main__":
    main()
