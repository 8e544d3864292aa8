#!/usr/bin/env python3
"""vllm_kv_pub.py — publishes KV events the way vLLM does, with vLLM's
opaque block hashes (random 32-byte values here: nothing a gateway could
recompute), for kvrehash.test.mjs.

Wire format as vLLM's ZmqEventPublisher: a PUB socket sending
[topic, seq (8 bytes big-endian), payload] where payload is a msgpack
KVEventBatch in msgspec's array_like form
[ts, [["BlockStored", hashes, parent, token_ids, block_size, lora_id, medium]], dp_rank];
a ROUTER replay socket answering [id, "", start_seq] with
[id, "", seq, payload] for every kept batch from start_seq, then
[id, "", -1, ""].

Usage: vllm_kv_pub.py  -> prints "pub ENDPOINT replay ENDPOINT", then reads
one JSON command a line on stdin and answers one JSON line:
  {"op": "store", "tokens": [...], "bs": 16, "parent": HEX|null,
   "publish": true, "keep": true}   -> {"seq": N, "hashes": [HEX...]}
     (publish false: a gap on the stream; keep false: replay cannot fill it)
  {"op": "wait_sub"}               -> {"ok": true} once a subscriber joined
"""
import json
import os
import sys
import threading
import time

import msgpack
import zmq

ctx = zmq.Context()
pub = ctx.socket(zmq.XPUB)  # XPUB: it sees subscriptions arrive
pub.bind("tcp://127.0.0.1:*")
router = ctx.socket(zmq.ROUTER)
router.bind("tcp://127.0.0.1:*")
kept = {}  # seq -> payload
lock = threading.Lock()
subscribed = threading.Event()


def replay_main():
    while True:
        ident, _, start = router.recv_multipart()
        start = int.from_bytes(start, "big", signed=True)
        with lock:
            seqs = sorted(s for s in kept if s >= start)
            msgs = [(s, kept[s]) for s in seqs]
        for s, payload in msgs:
            router.send_multipart([ident, b"", s.to_bytes(8, "big", signed=True), payload])
        router.send_multipart([ident, b"", (-1).to_bytes(8, "big", signed=True), b""])


threading.Thread(target=replay_main, daemon=True).start()
print("pub", pub.getsockopt_string(zmq.LAST_ENDPOINT),
      "replay", router.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)

seq = 0
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "wait_sub":
        while not subscribed.is_set():
            if pub.poll(5000):
                pub.recv()
                subscribed.set()
            else:
                break
        print(json.dumps({"ok": subscribed.is_set()}), flush=True)
        continue
    bs = cmd["bs"]
    toks = cmd["tokens"]
    n = len(toks) // bs
    hashes = [os.urandom(32) for _ in range(n)]
    parent = bytes.fromhex(cmd["parent"]) if cmd.get("parent") else None
    ev = ["BlockStored", hashes, parent, toks[: n * bs], bs, None, "GPU"]
    payload = msgpack.packb([time.time(), [ev], 0], use_bin_type=True)
    with lock:
        if cmd.get("keep", True):
            kept[seq] = payload
    if cmd.get("publish", True):
        pub.send_multipart([b"", seq.to_bytes(8, "big"), payload])
    print(json.dumps({"seq": seq, "hashes": [h.hex() for h in hashes]}), flush=True)
    seq += 1
