"""Concurrent counter workload (one thread and one connection per worker) and the state reader."""
import random
import threading
import time

from .model import Op
from .resp import Connection, ErrorReply, ServerGone, encode

PREFIX = b"ct:"
FILL_PREFIX = b"ct:f:"


class SlotMeta:
    __slots__ = ("kind", "owner", "group")

    def __init__(self, kind, owner=None, group=None):
        self.kind, self.owner, self.group = kind, owner, group


class KeyPlan:
    """Which keys exist. A slot is ("k", key) for a string counter, ("h", key, field) for a hash field,
    ("t", key) for a SET ... EX key, ("l", key) for a list (RPUSH), ("s", key) for a set (SADD),
    ("z", key, member) for a sorted-set score (ZINCRBY) and ("x", key) for a stream (XADD). Owned slots have one writer (exact per-key order is known);
    shared slots are written by every worker concurrently."""

    def __init__(self, workers):
        self.workers = workers
        self.slots = {}
        self.owned_counters, self.owned_fields, self.ttl_keys, self.groups = {}, {}, {}, {}
        self.lists, self.sets, self.zmembers, self.streams, self.stream_seq = {}, {}, {}, {}, {}
        for w in range(workers):
            p = PREFIX + b"w%d:" % w
            self.owned_counters[w] = [self._add(("k", p + b"c%d" % j), "counter", w) for j in range(4)]
            self.owned_fields[w] = [self._add(("h", p + b"h", b"f%d" % j), "counter", w) for j in range(3)]
            self.ttl_keys[w] = [self._add(("t", p + b"t%d" % j), "ttl", w) for j in range(2)]
            self.groups[w] = [self._add(("k", p + b"m%d" % j), "counter", w, group=w) for j in range(3)]
            self.lists[w] = [self._add(("l", p + b"l%d" % j), "seq", w) for j in range(2)]
            self.sets[w] = [self._add(("s", p + b"s%d" % j), "set", w) for j in range(2)]
            self.zmembers[w] = [self._add(("z", p + b"z", b"m%d" % j), "counter", w) for j in range(2)]
            self.streams[w] = [self._add(("x", p + b"x%d" % j), "seq", w) for j in range(2)]
            self.stream_seq[w] = 0  # XADD ids keep increasing across cycles (the plan outlives workers)
        self.shared_counters = [self._add(("k", PREFIX + b"s:c%d" % j), "counter") for j in range(4)]
        self.shared_fields = [self._add(("h", PREFIX + b"s:h", b"f%d" % j), "counter") for j in range(4)]
        self.keys = {slot[1] for slot in self.slots}

    def _add(self, slot, kind, owner=None, group=None):
        self.slots[slot] = SlotMeta(kind, owner, group)
        return slot


def _incr_command(slot, delta):
    if slot[0] == "k":
        return encode(b"INCRBY", slot[1], delta)
    if slot[0] == "z":
        return encode(b"ZINCRBY", slot[1], delta, slot[2])
    return encode(b"HINCRBY", slot[1], slot[2], delta)


class Worker(threading.Thread):
    """Sends one write at a time (a MULTI/EXEC block counts as one) and logs every op it sent."""

    def __init__(self, index, port, plan, seed, stop, ttl_range=(1, 4)):
        super().__init__(name="crash-worker-%d" % index, daemon=True)
        self.index, self.port, self.plan, self.stop = index, port, plan, stop
        self.rng = random.Random(seed)
        self.ttl_range = ttl_range
        self.log = []
        self.errors = []
        self.block_seq = 0
        self.token_seq = 0
        self.gone = None

    def delta(self):
        d = self.rng.randint(-1000, 1000)
        return d if d else 1

    def run(self):
        try:
            conn = Connection(self.port, timeout=30.0)
        except OSError as e:
            self.gone = "connect: %s" % e
            return
        try:
            while not self.stop.is_set():
                self.one(conn)
        except ServerGone as e:
            self.gone = str(e)
        finally:
            conn.close()

    def one(self, conn):
        w, rng, plan = self.index, self.rng, self.plan
        r = rng.random()
        if r < 0.80:
            if r < 0.30:
                slot = rng.choice(plan.owned_counters[w])
            elif r < 0.50:
                slot = rng.choice(plan.shared_counters)
            elif r < 0.60:
                slot = rng.choice(plan.owned_fields[w])
            elif r < 0.66:
                slot = rng.choice(plan.shared_fields)
            elif r < 0.68:
                slot = rng.choice(plan.zmembers[w])
            else:
                slot = None
            if slot is not None:
                op = Op(slot, w, self.delta())
                data = _incr_command(slot, op.arg)
                expect = bytes if slot[0] == "z" else int
            elif r < 0.75:
                # Lists, sets and streams: unique tokens on keys this worker owns.
                self.token_seq += 1
                token = b"w%d-%d-%d" % (w, self.token_seq, rng.randrange(1 << 30))
                kind = rng.randrange(3)
                if kind == 0:
                    slot = rng.choice(plan.lists[w])
                    op = Op(slot, w, token)
                    data = encode(b"RPUSH", slot[1], token)
                elif kind == 1:
                    slot = rng.choice(plan.sets[w])
                    op = Op(slot, w, token)
                    data = encode(b"SADD", slot[1], token)
                else:
                    slot = rng.choice(plan.streams[w])
                    plan.stream_seq[w] += 1
                    sid = b"%d-1" % (w * 1_000_000 + plan.stream_seq[w])
                    op = Op(slot, w, (sid, token))
                    data = encode(b"XADD", slot[1], sid, b"f", token)
                expect = bytes if kind == 2 else int
            else:
                slot = rng.choice(plan.ttl_keys[w])
                self.token_seq += 1
                token = b"w%d-%d-%d" % (w, self.token_seq, rng.randrange(1 << 30))
                ttl = rng.randint(*self.ttl_range)
                op = Op(slot, w, (token, ttl))
                data = encode(b"SET", slot[1], token, b"EX", ttl)
                expect = bytes
            self.log.append(op)
            op.wall_send = time.time()
            op.send = time.monotonic()
            conn.send(data)
            reply = conn.read_reply()
            op.recv = time.monotonic()
            op.wall_recv = time.time()
            if not isinstance(reply, expect):
                op.error = reply
                self.errors.append("%r -> %r" % (data[:80], reply))
            elif slot[0] == "z":
                op.reply = _score(reply)
            elif expect is int and slot[0] in "kh":
                op.reply = reply
            return
        # MULTI/EXEC over the worker's group keys: all of them or none must survive.
        self.block_seq += 1
        block = (w, self.block_seq)
        ops = [Op(slot, w, self.delta(), block=block) for slot in plan.groups[w]]
        data = encode(b"MULTI") + b"".join(_incr_command(op.slot, op.arg) for op in ops) + encode(b"EXEC")
        self.log.extend(ops)
        now_wall, now = time.time(), time.monotonic()
        for op in ops:
            op.wall_send, op.send = now_wall, now
        conn.send(data)
        replies = [conn.read_reply() for _ in range(len(ops) + 2)]
        now_wall, now = time.time(), time.monotonic()
        ok = isinstance(replies[-1], list) and len(replies[-1]) == len(ops) and all(
            isinstance(x, int) for x in replies[-1])
        for i, op in enumerate(ops):
            op.recv, op.wall_recv = now, now_wall
            if ok:
                op.reply = replies[-1][i]
            else:
                op.error = replies[-1]
        if not ok:
            self.errors.append("MULTI/EXEC -> %r" % (replies,))


class Workload:
    """Starts N workers; stop() asks them to finish their current op, join() waits for them."""

    def __init__(self, port, plan, rng, ttl_range=(1, 4)):
        self.stop_event = threading.Event()
        self.workers = [Worker(i, port, plan, rng.randrange(1 << 62), self.stop_event, ttl_range)
                        for i in range(plan.workers)]

    def start(self):
        for w in self.workers:
            w.start()

    def stop(self, timeout=60.0):
        self.stop_event.set()
        self.join(timeout)

    def join(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        stuck = [w.name for w in self.workers if w.is_alive()]
        if stuck:
            raise RuntimeError("workers did not stop: %s" % ", ".join(stuck))

    def logs(self):
        return [w.log for w in self.workers]

    def errors(self):
        return [e for w in self.workers for e in w.errors]

    def op_count(self):
        return sum(len(w.log) for w in self.workers)


def _score(reply):
    """A ZINCRBY / ZSCORE reply as an int when it is integral (the workload only adds integers)."""
    try:
        f = float(reply)
    except (TypeError, ValueError):
        return "%r" % (reply,)
    return int(f) if f.is_integer() else "%r" % (reply,)


def write_fill(port, fill, count, delta_for):
    """Pipelines INCRBY on `count` filler keys and updates `fill` (key -> value) as replies confirm."""
    conn = Connection(port, timeout=120.0)
    try:
        keys = [FILL_PREFIX + b"%d" % i for i in range(count)]
        deltas = [delta_for(i) for i in range(count)]
        replies = conn.pipeline([encode(b"INCRBY", k, d) for k, d in zip(keys, deltas)])
        for k, d, r in zip(keys, deltas, replies):
            if not isinstance(r, int):
                raise RuntimeError("filler INCRBY %s failed: %r" % (k, r))
            fill[k] = fill.get(k, 0) + d
            if fill[k] != r:
                raise RuntimeError("filler INCRBY %s answered %d, model says %d" % (k, r, fill[k]))
    finally:
        conn.close()


def _collection(kind, r):
    """LRANGE / SMEMBERS reply -> list of members (None when the key is absent); XRANGE -> list of
    (id, token). A malformed reply becomes its repr (a str), which the checker reports as a phantom."""
    if not isinstance(r, list):
        return "%r" % (r,)
    if not r:
        return None
    if kind != "x":
        return r if all(isinstance(m, bytes) for m in r) else "%r" % (r,)
    out = []
    for e in r:
        if not (isinstance(e, list) and len(e) == 2 and isinstance(e[1], list) and len(e[1]) == 2
                and e[1][0] == b"f"):
            return "%r" % (r,)
        out.append((e[0], e[1][1]))
    return out


def read_state(port, plan, fill_keys):
    """Reads every planned slot and filler key. Returns (observed, observed_fill, unknown_keys)."""
    conn = Connection(port, timeout=120.0)
    try:
        slots = list(plan.slots)
        cmds = []
        for slot in slots:
            if slot[0] == "h":
                cmds.append(encode(b"HGET", slot[1], slot[2]))
            elif slot[0] == "z":
                cmds.append(encode(b"ZSCORE", slot[1], slot[2]))
            elif slot[0] == "l":
                cmds.append(encode(b"LRANGE", slot[1], 0, -1))
            elif slot[0] == "s":
                cmds.append(encode(b"SMEMBERS", slot[1]))
            elif slot[0] == "x":
                cmds.append(encode(b"XRANGE", slot[1], b"-", b"+"))
            else:
                cmds.append(encode(b"GET", slot[1]))
                if slot[0] == "t":
                    cmds.append(encode(b"PTTL", slot[1]))
        wall_send = time.time()
        replies = conn.pipeline(cmds)
        wall_recv = time.time()
        observed, i = {}, 0
        for slot in slots:
            r = replies[i]
            i += 1
            if slot[0] == "t":
                pttl = replies[i]
                i += 1
                observed[slot] = (r, pttl if isinstance(pttl, int) else -3, wall_send, wall_recv)
                continue
            if slot[0] in "lsx":
                observed[slot] = _collection(slot[0], r)
                continue
            if slot[0] == "z":
                observed[slot] = None if r is None else _score(r)
                continue
            if r is None:
                observed[slot] = None
            elif isinstance(r, bytes) and r.lstrip(b"-").isdigit():
                observed[slot] = int(r)
            else:
                observed[slot] = "%r" % (r,)
        fill_list = list(fill_keys)
        fill_replies = conn.pipeline([encode(b"GET", k) for k in fill_list])
        observed_fill = {k: (int(r) if isinstance(r, bytes) and r.lstrip(b"-").isdigit() else r)
                         for k, r in zip(fill_list, fill_replies)}
        unknown = []
        keys = conn.call(b"KEYS", b"*")
        if isinstance(keys, list):
            known = plan.keys
            fill_set = set(fill_list)
            unknown = [k for k in keys if k not in known and k not in fill_set]
        else:
            # KEYS is not implemented: fall back to a count; TTL keys may expire meanwhile, so only a
            # size above everything that can exist is a phantom.
            size = conn.call(b"DBSIZE")
            present = sum(1 for s in slots if s[0] not in "hz" and observed[s] not in (None,)
                          and not (s[0] == "t" and observed[s][0] is None))
            present += len({s[1] for s in slots if s[0] in "hz" and observed[s] is not None})
            present += sum(1 for k in fill_list if observed_fill[k] is not None)
            present += sum(1 for s in slots if s[0] == "t" and observed[s][0] is None)  # expired, not yet gone
            if isinstance(size, int) and size > present:
                unknown = [b"<%d keys beyond the %d known ones>" % (size - present, present)]
        return observed, observed_fill, unknown
    finally:
        conn.close()
