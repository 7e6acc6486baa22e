#!/usr/bin/env python3
"""Random texts tokenized by Python spaCy, for a differential check of the Rust tokenizer.

Usage:
    python3 tests/parity/fuzz_tokenizer.py N SEED OUT.jsonl [wild]
    PARITY_FUZZ_FILE=OUT.jsonl cargo test --release --test parity_tokenizer -- --ignored

Each line is {"text": ..., "tokens": [[text, idx, whitespace, norm, norm_is_token_level]]}.
The texts mix spaCy's special cases, affix-heavy fragments, URLs, every kind of
whitespace and random characters ("wild" adds code points from all planes).
The model directory is $ARTICLE_ANALYZER_MODELS/en_core_web_sm-3.8.0, default
models/en_core_web_sm-3.8.0 under the repository root.
"""
import json
import os
import random
import sys
from pathlib import Path

import spacy

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL = Path(os.environ.get("ARTICLE_ANALYZER_MODELS", ROOT / "models")) / "en_core_web_sm-3.8.0"
nlp = spacy.load(MODEL, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner", "senter"])
tok = nlp.tokenizer
rng = random.Random(int(sys.argv[2]))
keys = list(tok.rules.keys())
frags = ["the","U.S.","N.Y.C.","can't","won't","I'm","y'all","'s","’s","e.g.","a.m.","p.m.","Mr.","Dr.","3.5bn","$","€","£","%","38.5%","2022","mid-2022","COVID-19",
 "https://spacy.io/usage?x=1","www.example.com","jane.doe@example.com","http://10.0.0.1/x","192.168.1.1","8.8.8.8","ftp://a.b",
 "(", ")", "[", "]", "\"", "'", "“", "”", "‘", "’", "—", "–", "-", "--", "...", "…", ".", ",", ";", ":", "!", "?", "!!", "?!", "/", "\\", "+", "*", "^", "=", "<", ">", "&", "#", "@", "_", "~", "`", "´",
 ":)", ":-)", ";)", "<3", "o.O", "^_^", "10km", "5'10", "3x4=12", "km²", "°C", "25°C.", "°F.", "10a.m.", "ain't", "gonna", "Gonna", "wanna", "cannot", "don't", "Don't", "DON'T",
 "Zürich", "ÉCOLE", "naïve", "北京", "東京都", "日本語", "😀", "👍🏽", "🇺🇸", "١٢٣", "x²", "नमस्ते", "Привет", "мир.", "Ελλάδα", "שלום", "مرحبا", "a\u0301", "\u200f", "\u200b", "\ufeff",
 "\u00a0", " ", "  ", "\t", "\n", "\n\n", "\r\n", "\x1c", "\u3000", "\u2003", "\x00", "\x07",
 "A.", "B.C.", "U.K.", "Inc.", "Corp.", "Jan.", "St.", "No.", "vs.", "etc.", "i.e.", "'em", "'cause", "o'clock", "O'Neil", "rock'n'roll", "C++", "C#", ".NET", "node.js", "file.txt", "a/b", "and/or", "1/2", "½", "3-4", "1990s", "'90s", "’90s", "$1", "US$5", "C$10", "5$", "10€",
 "ASAP", "e-mail", "re-enter", "self-driving", "well—known", "x—y", "yes--no", "up~down", "A&B", "AT&T", "Q&A", "#hashtag", "@user", "x:y", "a=b", "a<b", "http://", "://", "a.b.c", "A.B", "a.B", "a,b", "a,B", "1,000", "1.000,5", "+1", "+a", "-5", "5+", "5°C", "5°", "°"]
chars = [chr(c) for c in list(range(0x20,0x7f))*3 + [0xa0,0xa7,0xa9,0xb0,0xb2,0xbd,0xbf,0xc9,0xdf,0xe9,0xf1,0x2013,0x2014,0x2018,0x2019,0x201c,0x201d,0x2026,0x20ac,0x20b9,0x3001,0x3002,0xff01,0xff08,0xff09,0x1f600,0x300,0x301]]
def nosur(t):
    return "".join(c if not (0xd800<=ord(c)<=0xdfff) else "x" for c in t)
def rand_text():
    parts=[]
    for _ in range(rng.randint(1,25)):
        r=rng.random()
        if r<0.35: parts.append(rng.choice(frags))
        elif r<0.55: parts.append(rng.choice(keys))
        elif r<0.75: parts.append("".join(rng.choice(chars) for _ in range(rng.randint(1,8))))
        elif WILD: parts.append("".join(chr(rng.choice([rng.randint(0,0x7f),rng.randint(0x80,0x3000),rng.randint(0x3000,0xffff),rng.randint(0x10000,0x10ffff)])) for _ in range(rng.randint(1,6))).encode("utf-8","replace").decode("utf-8","replace").replace("\ud800","x"))
        else: parts.append(rng.choice(["a","the","word","Apple","x","9","10","ab","B"]))
        parts.append(rng.choice([" "," "," ","", "", "  ","\n",".",","]))
    return nosur("".join(parts))
n=int(sys.argv[1])
WILD=len(sys.argv)>4
out=open(sys.argv[3], "w", encoding="utf-8")
for i in range(n):
    text = rand_text()
    doc = tok(text)
    toks=[]
    for t in doc:
        lexnorm = nlp.vocab[t.text].norm_
        toks.append([t.text, t.idx, bool(t.whitespace_), t.norm_, t.norm_ != lexnorm])
    out.write(json.dumps({"text":text,"tokens":toks}, ensure_ascii=False)+"\n")
