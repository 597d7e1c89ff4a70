#!/usr/bin/env python3
"""Event-sourced counters on a stream (issue 16): append events, fold them into counters, rebuild.

    conformance/examples/event_counters.py [--port 6379] [--events 5000]

1. Producers append events with XADD (`counter`, `delta`) instead of overwriting counters.
2. A consumer group reads them with XREADGROUP and, per batch, applies HINCRBY to the `counters`
   hash and XACKs the batch inside one MULTI/EXEC, so a crash never applies a batch without
   acknowledging it (or the reverse): unacknowledged events are re-read from the PEL (`0`) first.
3. The counters are rebuilt from scratch with XRANGE over the whole log and must equal the folded
   ones exactly: the log is the source of truth, the hash a cache of it.

Runs against tally-server or redis-server alike (redis-py); exits non-zero on a mismatch.
"""
import argparse
import random
import sys

import redis

STREAM, GROUP, CONSUMER, COUNTERS = "events", "folders", "folder-1", "counters"


def fold(r, batch):
    """Reads up to `batch` events (own pending ones first, then new) and folds them atomically."""
    for start in ("0", ">"):
        reply = r.xreadgroup(GROUP, CONSUMER, {STREAM: start}, count=batch)
        entries = reply[0][1] if reply else []
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if entries:
            break
    if not entries:
        return 0
    pipe = r.pipeline(transaction=True)  # MULTI ... EXEC
    for _, fields in entries:
        pipe.hincrby(COUNTERS, fields["counter"], int(fields["delta"]))
    pipe.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])
    pipe.execute()
    return len(entries)


def rebuild(r):
    """Folds the whole log again, from the first entry, without the consumer group."""
    totals, last = {}, "-"
    while True:
        chunk = r.xrange(STREAM, min=last, max="+", count=1000)
        if last != "-":
            chunk = chunk[1:]
        if not chunk:
            return totals
        for _, fields in chunk:
            totals[fields["counter"]] = totals.get(fields["counter"], 0) + int(fields["delta"])
        last = chunk[-1][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    r = redis.Redis(port=args.port, decode_responses=True)
    r.delete(STREAM, COUNTERS)
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    rng = random.Random(args.seed)
    expected = {}
    for index in range(args.events):
        name, delta = "page:%d" % rng.randrange(20), rng.choice([1, 1, 1, 5, -1])
        r.xadd(STREAM, {"counter": name, "delta": delta})
        expected[name] = expected.get(name, 0) + delta
        if index % 97 == 0:
            fold(r, 50)
    while fold(r, 200):
        pass
    folded = {name: int(value) for name, value in r.hgetall(COUNTERS).items()}
    rebuilt = rebuild(r)
    pending = r.xpending(STREAM, GROUP)["pending"]
    ok = folded == expected == rebuilt and pending == 0 and r.xlen(STREAM) == args.events
    print("events %d, counters %d, pending %d: %s" % (r.xlen(STREAM), len(folded), pending,
                                                      "folded == rebuilt == expected" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
