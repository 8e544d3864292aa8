#!/usr/bin/env python3
"""Build the XLM-RoBERTa reference for tests/unit/test_embed_bert.c.

    make_xlmr_ref.py OUT_DIR

1. Writes a training text in several languages and scripts (English, Russian,
   German, Chinese, Greek, emoji, mixed) and trains a small SentencePiece
   Unigram model on it with Debian's `spm_train` (NFKC normalisation, the
   default, and character coverage below 1 so that rare characters are
   unknown, as in XLM-R's own model).
2. Converts that model to a Hugging Face tokenizer.json the way HF's
   XLMRobertaConverter lays it out (fairseq's <s> <pad> </s> <unk> first,
   the model's pieces from id 3 on shifted by one, <mask> last; Precompiled
   normaliser with the model's charsmap; Metaspace). The charsmap is read
   from the .model file's protobuf by the small wire-format reader below.
3. Writes three random-weight XLM-R sentence encoders in hub layout:
     xlmr-spm-f32/   sentencepiece.bpe.model only, F32, mean pooling
     xlmr-json-f16/  tokenizer.json only, F16 under a "roberta." prefix, CLS
                     pooling (BGE-style)
     e5-bf16/        both tokenizer files (the library is used), BF16, mean
                     pooling, 34 positions (a 32-token window: truncation at
                     the model's own length), E5's "query: " prompt in
                     config_sentence_transformers.json
4. ref.json: for each model, texts, expected ids and vectors computed by
   PyTorch (make_ref.py's encoder in XLMRobertaModel's variant: positions
   numbered from padding_idx + 1, token type 0, LayerNorm eps 1e-5) on one
   padded batch with an attention mask, float64 from the stored weights;
   and "tok": a few thousand texts (every script above, plus characters the
   model never saw, NFKC compatibility forms, combining marks, odd white
   space, literal control tokens) with the ids Debian's python3-sentencepiece
   gives, mapped to fairseq's ids, which both tokenizer paths must equal.
"""
import base64
import os
import random
import subprocess
import sys

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_ref as mr  # noqa: E402  (the encoder, in torch, and the file writers)

torch.manual_seed(4321)
R = random.Random(13)

H, LAYERS, HEADS, INTER, EPS, PAD = 32, 2, 4, 64, 1e-5, 1
mr.H, mr.LAYERS, mr.HEADS, mr.INTER, mr.EPS = H, LAYERS, HEADS, INTER, EPS
write_json = mr.write_json

EN = ("the quick brown fox jumps over lazy dog hello world cache semantic model token "
      "what is the weather today tomorrow please tell me how to cook rice book flight "
      "price of bitcoin translate this sentence into french write a poem about the sea "
      "explain quantum computing simply").split()
RU = ("привет мир какая сегодня погода завтра расскажи мне как приготовить рис "
      "купить билет на самолёт цена биткоина переведи это предложение напиши стихотворение "
      "о море объясни квантовые вычисления просто быстрая коричневая лиса прыгает").split()
DE = ("hallo welt wie ist das wetter heute morgen bitte erkläre mir die größe straße "
      "schön müde über fünf zwölf grüße mädchen äpfel öffnen flug buchen preis gedicht "
      "übersetze diesen satz").split()
ZH = ["你好", "世界", "今天", "天气", "怎么样", "明天", "请", "告诉", "我", "如何", "做饭",
      "米饭", "预订", "航班", "比特币", "价格", "翻译", "这个", "句子", "写", "一首", "关于",
      "大海", "的", "诗", "解释", "量子", "计算"]
EL = "γεια σου κόσμε τι καιρό κάνει σήμερα αύριο".split()
EMOJI = ["😀", "😂", "👍", "🎉", "❤️", "🔥", "🙂", "🚀", "🇩🇪", "👩‍💻", "👍🏽"]
PUNCT = [".", ",", "!", "?", "...", ":", ";", "-", "(", ")", "\"", "'", "«", "»", "—"]
NUM = ["1", "2", "42", "2024", "3.14", "100%", "$5", "€10", "10:30"]
LANGS = [EN, RU, DE, ZH, EL]

# never in the training text: unknown or NFKC-mapped at encoding time
RARE = ["مرحبا", "नमस्ते", "สวัสดี", "こんにちは", "カタカナ", "ｶﾀｶﾅ", "ＦＵＬＬ", "ｗｉｄｔｈ",
        "ﬁle", "①②", "㎏", "x²", "Ⅻ", "e\u0301", "Cafe\u0301", "zero\u200bwidth",
        "soft\u00adhyphen", "nb\u00a0sp", "ideo\u3000space", "▁", "▁▁x", "<s>", "</s>",
        "<unk>", "<pad>", "ctl\u0001x", "tab\there", "line\nbreak", "cr\r\nlf", "龘", "𠀋",
        "Ω≈ç√∫", "™", "…", "ŉ", "ǅ", "\ufeffbom", "\u2028ls", "   ", "\t\n"]


def sentence(r, lang=None):
    lang = lang or r.choice(LANGS)
    n = r.randint(1, 12)
    sep = "" if lang is ZH else " "
    words = [r.choice(lang) for _ in range(n)]
    s = sep.join(words)
    if r.random() < 0.4:
        s += r.choice(PUNCT)
    if r.random() < 0.2:
        s = s[:1].upper() + s[1:]
    return s


def training_text():
    r = random.Random(1)
    lines = []
    for i in range(4000):
        k = i % 8
        if k < 5:
            lines.append(sentence(r, LANGS[k]))
        elif k == 5:
            lines.append(sentence(r) + " " + r.choice(EMOJI) + " " + r.choice(NUM))
        else:
            lines.append(" ".join(sentence(r) for _ in range(2)))
    return "\n".join(lines) + "\n"


def test_texts():
    r = random.Random(2)
    texts = []
    for i in range(3000):
        k = i % 6
        if k == 0:
            t = sentence(r)
        elif k == 1:
            t = sentence(r) + r.choice(["", " ", "  "]) + r.choice(EMOJI) + sentence(r)
        elif k == 2:  # odd characters and white space
            parts = [r.choice(RARE) if r.random() < 0.5 else sentence(r) for _ in range(r.randint(1, 4))]
            t = r.choice(["", " ", "  ", "\t"]).join(parts)
        elif k == 3:  # white space at the ends and in runs
            t = r.choice(["", " ", "   ", "\n"]) + sentence(r).replace(" ", r.choice([" ", "  ", " \t "])) + \
                r.choice(["", " ", "  ", "\n"])
        elif k == 4:  # mixed scripts inside words
            t = "".join(r.choice(r.choice(LANGS)) for _ in range(r.randint(1, 5)))
        else:
            t = " ".join(sentence(r) for _ in range(r.randint(1, 4))) + r.choice(NUM)
        texts.append(t)
    # long texts: truncation in the 512-token window
    texts.append(" ".join(sentence(random.Random(3 + j)) for j in range(200)))
    texts.append("".join(R.choice(ZH) for _ in range(900)))
    return texts


# ---- the .model file's protobuf, just enough of it -------------------------

def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a serialized message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def charsmap(model_bytes):
    for f, wt, v in fields(model_bytes):
        if f == 3 and wt == 2:  # ModelProto.normalizer_spec
            for g, wt2, w in fields(v):
                if g == 2 and wt2 == 2:  # NormalizerSpec.precompiled_charsmap
                    return bytes(w)
    return b""


def tokenizer_json(sp, model_bytes):
    n = sp.get_piece_size()
    vocab = [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]]
    vocab += [[sp.id_to_piece(i), sp.get_score(i)] for i in range(3, n)]
    vocab += [["<mask>", 0.0]]

    def added(i, c, lstrip=False):
        return {"id": i, "content": c, "single_word": False, "lstrip": lstrip, "rstrip": False,
                "normalized": False, "special": True}
    cm = base64.b64encode(charsmap(model_bytes)).decode()
    assert cm
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<s>"), added(1, "<pad>"), added(2, "</s>"), added(3, "<unk>"),
                         added(len(vocab) - 1, "<mask>", True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": cm},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True,
                          "prepend_scheme": "always"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}]},
        "decoder": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True,
                    "prepend_scheme": "always"},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": False}}


def fairseq_ids(sp, text, window):
    """XLMRobertaTokenizer's ids: <s> pieces </s>, spm id + 1, <unk> 3."""
    ids = [3 if i == 0 else i + 1 for i in sp.encode(text)]
    if not ids:
        return []
    return [0] + ids[:window - 2] + [2]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    corpus = os.path.join(out, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(training_text())
    prefix = os.path.join(out, "spm")
    subprocess.run(["spm_train", "--input=" + corpus, "--model_prefix=" + prefix,
                    "--vocab_size=1200", "--model_type=unigram", "--character_coverage=0.995",
                    "--hard_vocab_limit=false", "--num_threads=1", "--minloglevel=2"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    model_bytes = open(prefix + ".model", "rb").read()
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    assert sp.unk_id() == 0 and sp.bos_id() == 1 and sp.eos_id() == 2
    tj = tokenizer_json(sp, model_bytes)
    V = len(tj["model"]["vocab"])

    texts = test_texts()
    tok_ids = [fairseq_ids(sp, t, 512) for t in texts]
    # what the texts exercise (else the comparison proves less than it says)
    assert sum(3 in s for s in tok_ids) > 50, "unknown pieces"
    assert sum(len(s) == 512 for s in tok_ids) >= 2, "truncation"
    assert sum(not s for s in tok_ids) > 0, "texts with no pieces"
    assert sp.encode("ＦＵＬＬ ﬁ") == sp.encode("FULL fi"), "NFKC"

    models = {}
    # name, dtype, tensor prefix, pooling, positions, .model?, tokenizer.json?, prompt
    specs = [("xlmr-spm-f32", "F32", "", "mean", 514, True, False, None),
             ("xlmr-json-f16", "F16", "roberta.", "cls", 514, False, True, None),
             ("e5-bf16", "BF16", "", "mean", 34, True, True, "query: ")]
    vec_texts = [t for t in texts[:24] if fairseq_ids(sp, t, 512)] + [texts[-2], texts[-1]]
    for name, dtype, tprefix, pooling, P, has_model, has_json, prompt in specs:
        d = os.path.join(out, name)
        os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
        if has_model:
            with open(os.path.join(d, "sentencepiece.bpe.model"), "wb") as f:
                f.write(model_bytes)
        if has_json:
            write_json(os.path.join(d, "tokenizer.json"), tj)
        write_json(os.path.join(d, "config.json"), {
            "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
            "hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
            "intermediate_size": INTER, "max_position_embeddings": P, "type_vocab_size": 1,
            "vocab_size": V, "layer_norm_eps": EPS, "hidden_act": "gelu", "pad_token_id": PAD,
            "bos_token_id": 0, "eos_token_id": 2, "position_embedding_type": "absolute"})
        write_json(os.path.join(d, "tokenizer_config.json"), {"model_max_length": P - 2})
        write_json(os.path.join(d, "modules.json"), [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
        write_json(os.path.join(d, "1_Pooling", "config.json"), {
            "word_embedding_dimension": H, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False})
        if prompt:
            write_json(os.path.join(d, "config_sentence_transformers.json"), {
                "prompts": {"query": prompt, "passage": "passage: "}, "default_prompt_name": None})
        w = mr.make_weights(V, P, 1)
        mr.save_safetensors(os.path.join(d, "model.safetensors"),
                            {tprefix + k: v for k, v in w.items()}, dtype)
        wr = mr.rounded(w, dtype)
        seqs = [fairseq_ids(sp, (prompt or "") + t, P - 2) for t in vec_texts]
        assert max(len(s) for s in seqs) == P - 2  # truncation is exercised
        with torch.no_grad():
            batch = mr.embed(wr, seqs, pooling, PAD)
            for i, s in enumerate(seqs):  # padding must not change a vector
                alone = mr.embed(wr, [s], pooling, PAD)[0]
                assert torch.dot(alone, batch[i]) > 1 - 1e-12, (name, i)
        models[name] = {"texts": vec_texts, "ids": seqs,
                        "vectors": [[float(x) for x in v] for v in batch]}
    write_json(os.path.join(out, "ref.json"), {
        "dim": H, "models": models,
        "tok": {"models": ["xlmr-spm-f32", "xlmr-json-f16"], "texts": texts, "ids": tok_ids}})


if __name__ == "__main__":
    main()
