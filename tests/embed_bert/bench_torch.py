#!/usr/bin/env python3
"""Baseline half of the BERT-backend benchmark (see bench_bert.c).

    bench_torch.py OUT_DIR THREADS

writes OUT_DIR/minilm-f32/, a random-weight encoder of all-MiniLM-L6-v2's
shape (hidden 384, 6 layers, 12 heads, intermediate 1536, 512 positions,
mean pooling) in hub layout (small test vocabulary: compute does not depend
on the vocabulary size), then times the same math in PyTorch eager mode
(make_ref.forward, the BertModel forward in plain torch, float32,
torch.set_num_threads(THREADS)) and prints one line:

    torch threads=T query_tokens=N p50_ms=.. p99_ms=.. batch=32 batch_sps=..

The C side tokenises the same texts itself; the test suite checks that its
ids and vectors equal PyTorch's.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_ref as mr  # noqa: E402

QUERY = "what is the quick way to cache a semantic query for the lazy dog"
BATCH = [
    "hello world",
    "the quick brown fox jumps over the lazy dog",
    "semantic cache tokens and lines",
    "unaffable naive resume",
    "don't stop the leading and trailing spaces",
    "is this the world of the brown dog",
    "emoji unknown zero width",
    "a cafe over the fox",
] * 4


def main():
    out, threads = sys.argv[1], int(sys.argv[2])
    mr.H, mr.LAYERS, mr.HEADS, mr.INTER, mr.MAXPOS = 384, 6, 12, 1536, 512
    d = os.path.join(out, "minilm-f32")
    os.makedirs(d, exist_ok=True)
    w = mr.make_weights()
    mr.save_safetensors(os.path.join(d, "model.safetensors"), w, "F32")
    mr.write_json(os.path.join(d, "config.json"), mr.config())
    mr.write_vocab(d)
    mr.write_json(os.path.join(d, "tokenizer_config.json"), {"do_lower_case": True})
    mr.write_st(d, "mean")
    torch.set_num_threads(threads)
    w = {k: v.to(torch.float32) for k, v in w.items()}
    q = [mr.tokenize(QUERY, True, 512)]
    seqs = [mr.tokenize(t, True, 512) for t in BATCH]
    with torch.inference_mode():
        for _ in range(20):
            mr.embed(w, q, "mean")
        lat = []
        for _ in range(200):
            t0 = time.perf_counter()
            mr.embed(w, q, "mean")
            lat.append((time.perf_counter() - t0) * 1e3)
        lat.sort()
        for _ in range(3):
            mr.embed(w, seqs, "mean")
        reps, t0 = 20, time.perf_counter()
        for _ in range(reps):
            mr.embed(w, seqs, "mean")
        sps = reps * len(seqs) / (time.perf_counter() - t0)
    print(f"torch threads={threads} query_tokens={len(q[0])} p50_ms={lat[len(lat) // 2]:.3f} "
          f"p99_ms={lat[int(len(lat) * 0.99)]:.3f} batch={len(seqs)} batch_sps={sps:.1f}",
          flush=True)


if __name__ == "__main__":
    main()
