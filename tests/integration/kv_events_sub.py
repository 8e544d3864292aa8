#!/usr/bin/env python3
"""kv_events_sub.py — an independent decoder of vLLM-format KV events, for
the tests: pyzmq + msgpack-python (Debian's python3-zmq, python3-msgpack),
not our C code, so that the engine's bytes are checked by someone else's
reader.

    kv_events_sub.py PUB_ENDPOINT [REPLAY_ENDPOINT]

Subscribes to every topic; for each multipart message [topic, seq, payload]
prints one JSON line {"seq", "topic", "ts", "dp_rank", "events": [...]}
with each event as {"type": tag, fields by vLLM's names}, hashes as
decimal strings. Prints {"ready": true} once subscribed. A line "replay N" on stdin
asks the replay socket for batches from N and prints them as
{"replay": seq, ...} lines, then {"replay_end": true}. Exits on EOF.
"""
import json
import select
import struct
import sys

import msgpack
import zmq

FIELDS = {
    "BlockStored": ["block_hashes", "parent_block_hash", "token_ids", "block_size",
                    "lora_id", "medium"],
    "BlockRemoved": ["block_hashes", "medium"],
    "AllBlocksCleared": [],
}


def hstr(h):
    if isinstance(h, bytes):  # vLLM's bytes hashes: the int form is the last 8 bytes
        h = int.from_bytes(h[-8:], "big")
    if not isinstance(h, int):
        raise ValueError("block hash must be int or bytes, got %r" % (h,))
    return str(h)


def decode(payload):
    batch = msgpack.unpackb(payload, raw=False)
    if not isinstance(batch, list) or len(batch) < 2:
        raise ValueError("KVEventBatch must be an array [ts, events, dp_rank]")
    ts, events = batch[0], batch[1]
    out = []
    for ev in events:
        tag, rest = ev[0], ev[1:]
        if tag not in FIELDS:
            raise ValueError("unknown event tag %r" % tag)
        names = FIELDS[tag]
        if len(rest) < len(names):
            raise ValueError("%s has %d fields, wants %d" % (tag, len(rest), len(names)))
        d = {"type": tag}
        d.update(zip(names, rest))
        # 64-bit hashes as decimal strings: JSON readers parse numbers as doubles
        if "block_hashes" in d:
            d["block_hashes"] = [hstr(h) for h in d["block_hashes"]]
        if d.get("parent_block_hash") is not None:
            d["parent_block_hash"] = hstr(d["parent_block_hash"])
        out.append(d)
    return {"ts": ts, "events": out, "dp_rank": batch[2] if len(batch) > 2 else None}


def main():
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(sys.argv[1])
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    replay = None
    if len(sys.argv) > 2:
        replay = ctx.socket(zmq.DEALER)
        replay.connect(sys.argv[2])
    print(json.dumps({"ready": True}), flush=True)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    stdin_fd = sys.stdin.fileno()
    while True:
        for s, _ in poller.poll(20):
            topic, seq, payload = s.recv_multipart()
            rec = {"seq": struct.unpack(">Q", seq)[0], "topic": topic.decode()}
            rec.update(decode(payload))
            print(json.dumps(rec), flush=True)
        r, _, _ = select.select([stdin_fd], [], [], 0)
        if r:
            line = sys.stdin.readline()
            if not line:
                return
            if line.startswith("replay ") and replay is not None:
                start = int(line.split()[1])
                replay.send_multipart([b"", struct.pack(">Q", start)])
                while True:
                    _, seq, payload = replay.recv_multipart()
                    if seq == b"\xff" * 8:
                        print(json.dumps({"replay_end": True}), flush=True)
                        break
                    rec = {"replay": struct.unpack(">Q", seq)[0]}
                    rec.update(decode(payload))
                    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
