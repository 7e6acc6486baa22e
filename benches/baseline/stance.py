"""Learned stance for the Python baseline server (benches/baseline/server.py):
the same merged model our server runs (all-MiniLM-L6-v2 plus the committed
adapter, through transformers), wired the way a user would wire it by hand.

Per request: the targets (the caller's, or the most frequent entities of a
stance-worthy label, five by default); for each, the sentences that name it
(a recognized mention with the same text, or the target string in the
sentence, case-insensitive), at most 24; every such sentence encoded once,
all of them in batches of 16 sorted by length, each mention read off the
shared hidden states (`training/stance/common.py`, the same code the
training and the parity fixtures use); per target the mean of
P(positive) - P(negative) over its mentions, FAVOR above 0.2, AGAINST below
-0.2, else NEUTRAL.

This is less than our server does per target (no gazetteer aliases, no
reported-speech weights, no lexicon reading, no relations), so the
benchmark's ratio is, if anything, in Python's favour.

torch and transformers live in scripts/python-torch-env's venv, spaCy and
grpcio in scripts/python-bench-env's (their protobuf pins differ): the
server runs under the latter and `load` appends the former's site-packages
to the end of sys.path, so that grpcio's protobuf and numpy win.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORTHY = {"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "PRODUCT", "EVENT", "LAW"}
MAX_SENTENCES = 24
MARGIN = 0.2


class Stance:
    def __init__(self, base_dir, adapter_dir, torch_site):
        if torch_site:
            sys.path.append(torch_site)
        sys.path.insert(0, os.path.join(ROOT, "training", "stance"))
        import torch
        import common

        torch.set_num_threads(1)
        self.torch, self.common = torch, common
        self.bert, self.head, manifest = common.load_merged(base_dir, adapter_dir)
        self.tok = common.tokenizer(base_dir)
        self.temperature = float(manifest.get("temperature", 1.0))
        self.info = {"name": manifest["name"], "version": str(manifest.get("version", "")),
                     "sha256": manifest["adapter_sha256"]}

    def targets(self, options, groups):
        """The target strings: the caller's (EXPLICIT), or the longest text of
        each of the most frequent stance-worthy entity groups."""
        stance = options.stance if options is not None else None
        if stance is not None and stance.mode == stance.EXPLICIT:
            return [t for t in stance.targets if t.strip()]
        limit = (stance.max_targets if stance is not None else 0) or 5
        ranked = sorted(((label, key, ms) for (label, key), ms in groups.items()
                         if label in WORTHY), key=lambda g: -len(g[2]))
        return [max((m.text for m in ms), key=len) for _, _, ms in ranked[:limit]]

    def classify(self, doc, targets):
        """Per target: (target, label, score, favor, against, neutral, evidence), where
        evidence is [(sentence, [(start_char, end_char)], p_pos - p_neg)]."""
        sents = list(doc.sents)
        # Mentions of each target, per sentence index (sentence-relative chars).
        wanted = []
        for target in targets:
            low = target.lower()
            found = {}
            for si, sent in enumerate(sents):
                if len(found) >= MAX_SENTENCES:
                    break
                spans = [(e.start_char - sent.start_char, e.end_char - sent.start_char)
                         for e in sent.ents if e.text.lower() == low]
                if not spans:
                    text, at = sent.text.lower(), 0
                    while (i := text.find(low, at)) >= 0:
                        spans.append((i, i + len(low)))
                        at = i + len(low)
                if spans:
                    found[si] = spans
            wanted.append(found)
        # One encoder row per sentence, with every target's mentions; a
        # mention is the word pieces that overlap its characters.
        order = sorted({si for found in wanted for si in found})
        enc = self.tok([sents[si].text for si in order], truncation=True, max_length=256,
                       return_offsets_mapping=True)
        items, kept = [], []
        for si, ids, offsets in zip(order, enc["input_ids"], enc["offset_mapping"]):
            mentions, row = [], []
            for ti, found in enumerate(wanted):
                for s, e in found.get(si, []):
                    pieces = [i for i, (a, b) in enumerate(offsets) if b > a and a < e and b > s]
                    if pieces:
                        mentions.append((pieces, 0))
                        row.append((ti, si, (s, e)))
            if mentions:
                items.append((ids, mentions))
                kept.append(row)
        readings = [[] for _ in targets]  # (sentence index, span, z)
        batch_order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        for at in range(0, len(batch_order), 16):
            chunk = batch_order[at:at + 16]
            ids, att, index, _ = self.common.collate([items[i] for i in chunk])
            logits = self.common.merged_logits(self.bert, self.head, ids, att, index)
            probs = self.torch.softmax(logits / self.temperature, dim=-1).tolist()
            k = 0
            for i in chunk:
                for ti, si, span in kept[i]:
                    neg, _, pos = probs[k]
                    readings[ti].append((si, span, pos - neg))
                    k += 1
        out = []
        for ti, target in enumerate(targets):
            zs = [z for _, _, z in readings[ti]]
            z = sum(zs) / len(zs) if zs else 0.0
            favor, against = max(z, 0.0), max(-z, 0.0)
            neutral = 1.0 - favor - against
            label = "FAVOR" if z > MARGIN else "AGAINST" if z < -MARGIN else "NEUTRAL"
            score = {"FAVOR": favor, "AGAINST": against, "NEUTRAL": neutral}[label]
            by_sentence = {}
            for si, span, zi in readings[ti]:
                by_sentence.setdefault(si, []).append((span, zi))
            evidence = [(sents[si], [s for s, _ in rows], sum(z for _, z in rows) / len(rows))
                        for si, rows in sorted(by_sentence.items())]
            out.append((target, label, score, favor, against, neutral, evidence))
        return out
