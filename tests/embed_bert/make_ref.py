#!/usr/bin/env python3
"""Build the BERT-backend reference for tests/unit/test_embed_bert.c.

    make_ref.py OUT_DIR

writes three small random-weight BERT sentence encoders, each in the layout a
user downloads from a model hub, plus reference vectors computed by PyTorch:

  OUT_DIR/mean-f32/    F32 weights, HF BertModel names, vocab.txt +
                       tokenizer_config.json (do_lower_case), sentence-
                       transformers modules.json, 1_Pooling (mean), Normalize,
                       sentence_bert_config.json (max_seq_length 20 < 32
                       positions, so truncation is exercised)
  OUT_DIR/cls-f16/     F16 weights under a "bert." prefix (as in BertFor*
                       checkpoints) with extra head tensors, tokenizer.json
                       (WordPiece + BertNormalizer), CLS pooling
  OUT_DIR/cased-bf16/  BF16 weights, vocab.txt with do_lower_case false (accents
                       kept), no sentence-transformers files (mean pooling)
  OUT_DIR/ref.json     {"models": {name: {"texts": [...], "ids": [[...]],
                       "vectors": [[...]]}}}

The encoder below is HF BertModel's forward written out in plain torch
(transformers is not packaged in Debian 12): embeddings (word + position +
token type 0) and LayerNorm; per layer self-attention with the additive
mask (finfo.min on padding), output dense + residual + LayerNorm, GELU
intermediate, output dense + residual + LayerNorm. Sentence-transformers
pooling (masked mean, or CLS) and L2 normalisation follow. The reference
runs the whole list of texts as ONE padded batch with an attention mask, in
float64 from the stored (rounded) weights, and checks that each text alone
gives the same vector, so padding is part of what the C side is held to.

The tokenizer is HF's BERT tokenizer (BertNormalizer / BasicTokenizer +
WordPiece) written out here; its expected behaviour on a few known cases is
asserted before anything is written.
"""
import json
import os
import struct
import sys
import unicodedata

import torch

torch.manual_seed(1234)

H, LAYERS, HEADS, INTER, MAXPOS, TYPES, EPS = 48, 2, 3, 96, 32, 2, 1e-12

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["hello", "world", "the", "quick", "brown", "fox", "jump", "over", "lazy", "dog",
         "un", "cafe", "resume", "naive", "token", "cache", "semantic", "don", "stop",
         "tab", "lines", "zero", "width", "emoji", "unknown", "leading", "and", "trailing",
         "spaces", "Hello", "World", "Café", "The", "is", "of", "this"]
CONT = ["##ed", "##ing", "##aff", "##able", "##izer", "##ate", "##ly",
        "##er", "##é", "##ï"]
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + \
    list(".,!?'\"-()/:;[]") + ["中", "文", "日", "本", "é", "è", "à", "ü", "ï", "ñ"]
VOCAB = SPECIALS + CHARS + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + \
    WORDS + CONT
assert len(VOCAB) == len(set(VOCAB))
VID = {t: i for i, t in enumerate(VOCAB)}

LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)
TEXTS = [
    "Hello, world!",
    "fill the [MASK] here[SEP]x [CLS[UNK]] [mask]",
    "The quick brown fox jumps over the lazy dog.",
    "unaffable",
    "Café résumé naïve",
    "HELLO WORLD",
    "中文 tokens 日本",
    "a",
    LONG,
    "tab\tseparated\nlines\r\nhere",
    "zero\u200bwidth joiner",
    "emoji 😀 unknown",
    "x" * 120 + " hello",
    "!!!???...",
    "don't stop",
    "cafe\u0301 e\u0301",
    "   leading and trailing spaces   ",
    "ÀÉÎÕÜ àéîõü",
    "null\u0000byte",
    "jumped jumping jumps",
    "Ω≈ç√∫ Ελληνικά кириллица",
]


# ---- tokenizer (HF BertNormalizer + BertPreTokenizer + WordPiece) ----------

def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def normalize(text, lower, strip):
    out = []
    for c in text:
        cp = ord(c)
        if cp == 0 or cp == 0xFFFD or is_control(c):
            continue
        if is_whitespace(c):
            out.append(" ")
        elif is_cjk(cp):
            out.append(" " + c + " ")
        else:
            out.append(c)
    s = "".join(out)
    if strip:
        s = "".join(c for c in unicodedata.normalize("NFD", s)
                    if unicodedata.category(c) != "Mn")
    if lower:
        s = s.lower()
    return s


def pretokenize(s):
    words, cur = [], []
    for c in s:
        if c == " " or is_whitespace(c):
            if cur:
                words.append("".join(cur))
                cur = []
        elif is_punct(c):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(c)
        else:
            cur.append(c)
    if cur:
        words.append("".join(cur))
    return words


def wordpiece(word):
    if len(word) > 100:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in VID:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        out.append(cur)
        start = end
    return out


def split_specials(text):
    """Special tokens written in the text are matched first, on the raw
    text (HF's added-token split; BERT's specials are not normalised)."""
    parts, i, start = [], 0, 0
    while i < len(text):
        hit = max((s for s in SPECIALS if text.startswith(s, i)), key=len, default=None)
        if hit:
            parts.append(text[start:i])
            parts.append(hit)
            i += len(hit)
            start = i
        else:
            i += 1
    parts.append(text[start:])
    return parts


def tokenize(text, lower, maxlen):
    toks = []
    for part in split_specials(text):
        if part in SPECIALS:
            toks.append(part)
            continue
        for w in pretokenize(normalize(part, lower, lower)):
            toks.extend(wordpiece(w))
    toks = toks[:maxlen - 2]
    return [VID["[CLS]"]] + [VID[t] for t in toks] + [VID["[SEP]"]]


def toks(text, lower=True):
    return [VOCAB[i] for i in tokenize(text, lower, 512)[1:-1]]


# Known behaviour of HF's BERT tokenizer, checked on this implementation.
assert toks("Hello, world!") == ["hello", ",", "world", "!"]
assert toks("unaffable") == ["un", "##aff", "##able"]
assert toks("Café résumé naïve") == ["cafe", "resume", "naive"]
assert toks("Café", lower=False) == ["Café"]
assert toks("naïve", lower=False) == ["n", "##a", "##ï", "##v", "##e"]
assert toks("中文x") == ["中", "文", "x"]
assert toks("don't") == ["don", "'", "t"]
assert toks("zero\u200bwidth") == ["zero", "##w", "##i", "##d", "##t", "##h"]
assert toks("emoji 😀") == ["emoji", "[UNK]"]
assert toks("x" * 101) == ["[UNK]"]
assert toks("\u00a0a\u3000b") == ["a", "b"]  # Zs is whitespace
assert toks("a[MASK]b [hello] [SEP]") == ["a", "[MASK]", "b", "[", "hello", "]", "[SEP]"]


# ---- the model -------------------------------------------------------------

def rnd(*shape, std=0.3):
    return torch.randn(*shape) * std


def make_weights(vocab=None, maxpos=None, types=None):
    """Random BERT weights; the sizes default to this file's model (make_xlmr_ref.py
    passes its own)."""
    w = {
        "embeddings.word_embeddings.weight": rnd(vocab or len(VOCAB), H, std=1.0),
        "embeddings.position_embeddings.weight": rnd(maxpos or MAXPOS, H, std=0.5),
        "embeddings.token_type_embeddings.weight": rnd(types or TYPES, H, std=0.5),
        "embeddings.LayerNorm.weight": 1 + rnd(H, std=0.1),
        "embeddings.LayerNorm.bias": rnd(H, std=0.1),
        "pooler.dense.weight": rnd(H, H),
        "pooler.dense.bias": rnd(H),
    }
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        for n in ["attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"]:
            w[p + n + ".weight"] = rnd(H, H, std=H ** -0.5 * 1.5)
            w[p + n + ".bias"] = rnd(H, std=0.1)
        w[p + "attention.output.LayerNorm.weight"] = 1 + rnd(H, std=0.1)
        w[p + "attention.output.LayerNorm.bias"] = rnd(H, std=0.1)
        w[p + "intermediate.dense.weight"] = rnd(INTER, H, std=H ** -0.5)
        w[p + "intermediate.dense.bias"] = rnd(INTER, std=0.1)
        w[p + "output.dense.weight"] = rnd(H, INTER, std=INTER ** -0.5)
        w[p + "output.dense.bias"] = rnd(H, std=0.1)
        w[p + "output.LayerNorm.weight"] = 1 + rnd(H, std=0.1)
        w[p + "output.LayerNorm.bias"] = rnd(H, std=0.1)
    return w


def layer_norm(x, g, b):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), g, b, EPS)


def forward(w, ids, mask, pad=None):
    """HF BertModel forward; ids, mask: [B, L]. Returns last hidden [B, L, H].
    With pad (XLM-R's padding_idx), positions are RoBERTa's: the running count
    of real tokens plus pad (create_position_ids_from_input_ids)."""
    B, L = ids.shape
    pe = w["embeddings.position_embeddings.weight"]
    x = w["embeddings.word_embeddings.weight"][ids] + \
        (pe[:L][None] if pad is None else pe[torch.cumsum(mask, dim=1) * mask + pad]) + \
        w["embeddings.token_type_embeddings.weight"][0][None, None]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    dh = H // HEADS
    lin = torch.nn.functional.linear
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."

        def proj(n, t):
            return lin(t, w[p + n + ".weight"], w[p + n + ".bias"])

        def heads(t):
            return t.view(B, L, HEADS, dh).permute(0, 2, 1, 3)
        q = heads(proj("attention.self.query", x))
        k = heads(proj("attention.self.key", x))
        v = heads(proj("attention.self.value", x))
        s = q @ k.transpose(-1, -2) / (dh ** 0.5) + ext
        a = torch.softmax(s, dim=-1)
        ctx = (a @ v).permute(0, 2, 1, 3).reshape(B, L, H)
        x = layer_norm(proj("attention.output.dense", ctx) + x,
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"])
        i = torch.nn.functional.gelu(proj("intermediate.dense", x))
        x = layer_norm(proj("output.dense", i) + x, w[p + "output.LayerNorm.weight"],
                       w[p + "output.LayerNorm.bias"])
    return x


def embed(w, seqs, pooling, pad=None):
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad or 0, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    x = forward(w, ids, mask, pad)
    m = mask[..., None].to(x.dtype)
    if pooling == "cls":
        v = x[:, 0]
    elif pooling == "max":  # sentence-transformers: padding set to -1e9 first
        v = torch.where(m > 0, x, torch.full_like(x, -1e9)).max(1).values
    elif pooling == "mean_sqrt":
        v = (x * m).sum(1) / torch.sqrt(m.sum(1))
    else:
        v = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(v, p=2, dim=1)


# ---- files -------------------------------------------------------------------

def save_safetensors(path, tensors, dtype):
    """Write the safetensors format: u64 LE header length, JSON header
    (space-padded to 8 bytes), then the raw little-endian tensor data."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if dtype == "F32":
            raw = t.to(torch.float32).numpy().tobytes()
        elif dtype == "F16":
            raw = t.to(torch.float16).numpy().tobytes()
        else:
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rounded(w, dtype):
    conv = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    return {k: v.to(conv).to(torch.float64) for k, v in w.items()}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)


def config():
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": H,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": INTER, "max_position_embeddings": MAXPOS,
            "type_vocab_size": TYPES, "vocab_size": len(VOCAB), "layer_norm_eps": EPS,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "position_embedding_type": "absolute", "pad_token_id": 0}


def write_vocab(d):
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")


def write_st(d, pooling, sub=""):
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": sub, "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": H, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": pooling == "mean_sqrt"})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    models = {}
    # name, dtype, prefix, lower, pooling, max_len, tokenizer.json?, sentence-transformers
    # files?, Transformer module folder (older sentence-transformers layouts)
    specs = [("mean-f32", "F32", "", True, "mean", 20, False, True, ""),
             ("cls-f16", "F16", "bert.", True, "cls", MAXPOS, True, True, ""),
             ("cased-bf16", "BF16", "", False, "mean", MAXPOS, False, False, ""),
             ("max-f32", "F32", "", True, "max", MAXPOS, False, True, ""),
             ("msqrt-f32", "F32", "", True, "mean_sqrt", MAXPOS, False, True, "0_BERT")]
    for name, dtype, prefix, lower, pooling, maxlen, tokjson, st, sub in specs:
        top = os.path.join(out, name)
        d = os.path.join(top, sub)
        os.makedirs(d, exist_ok=True)
        w = make_weights()
        tensors = {prefix + k: v for k, v in w.items()}
        if prefix:
            tensors["cls.predictions.bias"] = rnd(len(VOCAB))
        save_safetensors(os.path.join(d, "model.safetensors"), tensors, dtype)
        write_json(os.path.join(d, "config.json"), config())
        if tokjson:
            write_json(os.path.join(d, "tokenizer.json"), {
                "version": "1.0", "truncation": None, "padding": None,
                "added_tokens": [{"id": VID[t], "content": t, "single_word": False,
                                  "lstrip": False, "rstrip": False, "normalized": False,
                                  "special": True} for t in SPECIALS],
                "normalizer": {"type": "BertNormalizer", "clean_text": True,
                               "handle_chinese_chars": True, "strip_accents": None,
                               "lowercase": lower},
                "pre_tokenizer": {"type": "BertPreTokenizer"},
                "post_processor": {"type": "TemplateProcessing"},
                "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
                "model": {"type": "WordPiece", "unk_token": "[UNK]",
                          "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                          "vocab": VID}})
        else:
            write_vocab(d)
            write_json(os.path.join(d, "tokenizer_config.json"),
                       {"do_lower_case": lower, "tokenize_chinese_chars": True,
                        "strip_accents": None,
                        # HF's "no limit" value, too big for a 64-bit integer
                        "model_max_length": 512 if lower else 1000000000000000019884624838656})
        if st:
            write_st(top, pooling, sub)
            if maxlen != MAXPOS:
                write_json(os.path.join(top, "sentence_bert_config.json"),
                           {"max_seq_length": maxlen, "do_lower_case": False})
        wr = rounded(w, dtype)
        seqs = [tokenize(t, lower, maxlen) for t in TEXTS]
        assert max(len(s) for s in seqs) == maxlen  # truncation is exercised
        with torch.no_grad():
            batch = embed(wr, seqs, pooling)
            for i, s in enumerate(seqs):  # padding must not change a vector
                alone = embed(wr, [s], pooling)[0]
                assert torch.dot(alone, batch[i]) > 1 - 1e-12, (name, i)
        models[name] = {"texts": TEXTS, "ids": seqs,
                        "vectors": [[float(x) for x in v] for v in batch]}
    write_json(os.path.join(out, "ref.json"), {"dim": H, "models": models})


if __name__ == "__main__":
    main()
