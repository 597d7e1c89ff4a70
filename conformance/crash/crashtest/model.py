"""The expected-state model: which operations a recovered server must, may, or must not contain.

Every write a worker sends is recorded as an Op with its send time and, if a reply came, its reply time
(time.monotonic, which all threads share). A recovered state is checked against a *window* (Ta, Tb):

    reply received before Ta            -> must be applied   (acknowledged before the durable point)
    sent after Tb                       -> must not be applied
    anything else (incl. no reply)      -> may be applied, but per connection only as a prefix

For AOF and SIGTERM runs the window is (inf, inf): every acknowledged write must survive, the one in
flight per connection may or may not. For an RDB snapshot the window is (time BGSAVE/SAVE was sent,
time its reply came): the fork (snapshot instant) happened somewhere in between.
"""
import math

INF = math.inf
SUM_SET_CAP = 2_000_000  # beyond this many candidate sums a shared key falls back to a range check


class Op:
    __slots__ = ("slot", "worker", "arg", "send", "recv", "wall_send", "wall_recv", "error", "block", "reply")

    def __init__(self, slot, worker, arg, block=None):
        self.slot = slot
        self.worker = worker
        self.arg = arg          # int delta for counters, (token, ttl_seconds) for TTL keys
        self.block = block      # MULTI/EXEC block id, shared by the ops of one transaction
        self.send = self.recv = None
        self.wall_send = self.wall_recv = None
        self.error = None
        self.reply = None       # the counter's new value as the server answered it


class Window:
    def __init__(self, ta, tb, label, certain=True):
        self.ta, self.tb, self.label = ta, tb, label
        self.certain = certain  # False: a save that may or may not have completed before the kill


ALL_ACKED = Window(INF, INF, "all-acknowledged")


def split(ops, window):
    """Splits one connection's ops on one slot into (must, maybe) lists, in send order."""
    must, maybe = [], []
    for op in ops:
        if op.error is not None:
            continue  # an error reply means the command was not applied
        if op.recv is not None and op.recv < window.ta:
            must.append(op)
        elif op.send > window.tb:
            break
        else:
            maybe.append(op)
    return must, maybe


class CheckResult:
    def __init__(self):
        self.keys = 0
        self.acked = 0           # acknowledged writes that had to be present
        self.discarded = 0       # acknowledged writes legitimately absent (after the snapshot instant)
        self.fill_checked = 0    # filler keys among `keys` / `acked`
        self.lost_after_signal = 0  # lost writes whose reply came after the kill/SIGTERM was sent
        self.bad_replies = 0     # INCRBY answers that do not follow from the key's own history
        self.lost = 0
        self.phantoms = 0
        self.torn = 0
        self.bad_ttl = 0
        self.loss_window = 0.0   # seconds between the first lost acknowledgement and the crash
        self.failures = []
        self.new_base = {}

    @property
    def ok(self):
        return not (self.lost or self.phantoms or self.torn or self.bad_ttl or self.bad_replies or self.failures)

    def fail(self, text):
        if len(self.failures) < 12:
            self.failures.append(text)
        else:
            self.failures.append(None)


def _fmt(slot):
    return " ".join(s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in slot)


class Model:
    """Holds the recovered state of the last check (the base) plus the op logs of the current cycle."""

    def __init__(self, plan):
        self.plan = plan
        self.base = {slot: None for slot in plan.slots}
        self.fill = {}  # filler key -> value; written only while nothing can crash, so always acked

    def check(self, logs, window, observed, observed_fill, unknown_keys, crash_time):
        """Compares the observed state with what `window` allows; returns a CheckResult."""
        res = CheckResult()
        by_slot = {}
        for log in logs:
            for op in log:
                by_slot.setdefault(op.slot, {}).setdefault(op.worker, []).append(op)
        group_matches = {}
        for slot, meta in self.plan.slots.items():
            res.keys += 1
            per_worker = by_slot.get(slot, {})
            parts = {w: split(ops, window) for w, ops in per_worker.items()}
            for must, _ in parts.values():
                res.acked += len(must)
            res.discarded += sum(1 for ops in per_worker.values() for op in ops
                                 if op.recv is not None and op.error is None) - sum(
                len(must) for must, _ in parts.values())
            if meta.kind == "ttl":
                self._check_ttl(slot, parts, observed[slot], res)
                continue
            if meta.kind in ("seq", "set"):
                self._check_collection(slot, meta.kind, parts, observed[slot], res, crash_time)
                continue
            if len(per_worker) == 1 and meta.owner is not None:
                self._check_replies(slot, next(iter(per_worker.values())), res)
            value = observed[slot]
            if isinstance(value, str):
                res.phantoms += 1
                res.fail("%s: unexpected reply %s" % (_fmt(slot), value))
                continue
            matches = self._check_counter(slot, parts, value, res, crash_time)
            if meta.group is not None and matches is not None:
                group_matches.setdefault(meta.group, []).append((slot, matches))
        for group, entries in group_matches.items():
            # Only a group whose keys are each explained on their own can be torn; an unexplained key
            # is already counted as lost or phantom.
            if not all(m for _, m in entries):
                continue
            common = set.intersection(*(m for _, m in entries))
            if not common:
                res.torn += 1
                res.fail("MULTI group %s is not all-or-nothing: blocks applied per key %s"
                         % (group, ", ".join("%s=%s" % (_fmt(s), sorted(m)) for s, m in entries)))
        for k, want in self.fill.items():
            res.keys += 1
            res.acked += 1
            res.fill_checked += 1
            got = observed_fill.get(k)
            if got != want:
                if got is None or (isinstance(got, int) and got < want):
                    res.lost += 1
                else:
                    res.phantoms += 1
                res.fail("filler %s: expected %s, found %s" % (k.decode(), want, got))
        for k in unknown_keys:
            res.phantoms += 1
            res.fail("unknown key present: %r" % k)
        return res

    def _check_replies(self, slot, ops, res):
        """An owned counter has one writer, so each reply must be the base plus the deltas sent so far:
        a wrong answer before the crash (a double apply, a lost update) shows up here."""
        running = self.base[slot] or 0
        for op in ops:
            if op.error is not None:
                continue
            running += op.arg
            if op.reply is not None and op.reply != running:
                res.bad_replies += 1
                res.fail("%s: INCRBY %d answered %d, expected %d from the key's history"
                         % (_fmt(slot), op.arg, op.reply, running))
                return

    def _check_counter(self, slot, parts, value, res, crash_time):
        """Checks one counter / hash field. Returns the set of per-writer prefix lengths that explain the
        value when the slot has a single writer (used for MULTI atomicity), else None."""
        base = self.base[slot]
        start = (base or 0) + sum(op.arg for must, _ in parts.values() for op in must)
        n_must = sum(len(m) for m, _ in parts.values())
        if value is None:
            ok = base is None and n_must == 0
            if ok:
                res.new_base[slot] = None
                return {0} if len(parts) <= 1 else None
        single = len(parts) <= 1
        if single:
            maybe = next(iter(parts.values()))[1] if parts else []
            candidates = [start]
            for op in maybe:
                candidates.append(candidates[-1] + op.arg)
            matches = {k for k, c in enumerate(candidates) if c == value}
            if matches:
                res.new_base[slot] = value
                return matches
        else:
            sums = {0}
            capped = False
            for _, maybe in parts.values():
                prefixes = [0]
                for op in maybe:
                    prefixes.append(prefixes[-1] + op.arg)
                if capped or len(sums) * len(prefixes) > SUM_SET_CAP:
                    capped = True
                    lo = min(sums) + min(prefixes)
                    hi = max(sums) + max(prefixes)
                    sums = {lo, hi}
                else:
                    sums = {s + p for s in sums for p in prefixes}
            if value is not None and ((capped and min(sums) <= value - start <= max(sums))
                                      or (value - start) in sums):
                res.new_base[slot] = value
                return None
        # Not explained: find the longest prefix of acknowledged writes (in reply order) that explains
        # it -> the rest were lost; nothing explains it -> a phantom (or double-applied) write.
        acked = sorted((op for must, _ in parts.values() for op in must), key=lambda op: op.recv)
        running, lost_at = (base or 0), None
        if value == base or (value is None and base is None):
            lost_at = 0
        for i, op in enumerate(acked):
            running += op.arg
            if running == value:
                lost_at = i + 1
        res.new_base[slot] = value
        if value is None:
            lost_at = 0  # the key vanished: everything acknowledged on it is gone (at least its old value)
        if lost_at is not None and (lost_at < len(acked) or value is None):
            lost = max(1, len(acked) - lost_at)
            res.lost += lost
            when = ""
            if crash_time is not None and lost_at < len(acked):
                res.loss_window = max(res.loss_window, crash_time - acked[lost_at].recv)
                after = sum(1 for op in acked[lost_at:] if op.recv > crash_time)
                res.lost_after_signal += after
                when = ", the first acknowledged %+.1f ms relative to the kill/SIGTERM" % (
                    (acked[lost_at].recv - crash_time) * 1000)
            res.fail("%s: found %s, expected %s (+ in-flight): %d acknowledged write(s) lost%s"
                     % (_fmt(slot), value, start, lost, when))
        else:
            res.phantoms += 1
            res.fail("%s: found %s, expected %s (+ in-flight %s): phantom or double-applied write"
                     % (_fmt(slot), value, start,
                        [op.arg for _, maybe in parts.values() for op in maybe]))
        return set() if single else None

    def _check_ttl(self, slot, parts, seen, res):
        """A SET ... EX key with one writer: the recovered value must be the last included SET's token
        with a deadline consistent with that SET, or absent if that deadline may have passed."""
        token, pttl, read_send, read_recv = seen
        must, maybe = next(iter(parts.values())) if parts else ([], [])
        states = []
        for k in range(len(must), len(must) + len(maybe) + 1):
            if k == 0:
                states.append(self.base[slot])
            else:
                op = (must + maybe)[k - 1]
                tok, ttl = op.arg
                hi = (op.wall_recv if op.wall_recv is not None else INF) + ttl
                states.append((tok, op.wall_send + ttl, hi))
        slack = 0.005  # millisecond rounding of stored deadlines
        if token is None or pttl == -2:
            if any(st is None or st[1] <= read_recv + slack for st in states):
                res.new_base[slot] = None
                return
            res.lost += 1
            res.fail("%s: missing, but its last acknowledged SET EX cannot have expired yet" % _fmt(slot))
            res.new_base[slot] = None
            return
        if pttl < 0:
            res.bad_ttl += 1
            res.fail("%s: present without a TTL (PTTL %d)" % (_fmt(slot), pttl))
            res.new_base[slot] = None
            return
        seen_lo, seen_hi = read_send + pttl / 1000.0 - slack, read_recv + pttl / 1000.0 + slack
        for st in states:
            if st is not None and st[0] == token:
                if seen_hi >= st[1] and seen_lo <= st[2]:
                    res.new_base[slot] = (token, max(st[1], seen_lo), min(st[2], seen_hi))
                    return
                res.bad_ttl += 1
                res.fail("%s: TTL %d ms is not consistent with its SET EX" % (_fmt(slot), pttl))
                res.new_base[slot] = (token, seen_lo, seen_hi)
                return
        known = any(st is not None and st[0] == token for st in [self.base[slot]]) or any(
            op.arg[0] == token for m, mb in parts.values() for op in m + mb)
        if known:
            res.lost += 1
            res.fail("%s: holds an older value %r: a later acknowledged SET was lost" % (_fmt(slot), token))
        else:
            res.phantoms += 1
            res.fail("%s: holds a value never written: %r" % (_fmt(slot), token))
        res.new_base[slot] = (token, seen_lo, seen_hi)

    def _check_collection(self, slot, kind, parts, value, res, crash_time):
        """A list (RPUSH) or stream (XADD) with one writer ("seq"): the recovered elements must be the base
        followed by the acknowledged writes and then a prefix of the maybe-writes, in order. A set (SADD,
        "set"): the members must be the base plus every acknowledged token plus a prefix of the
        maybe-writes' tokens (tokens are unique, so order inside the set does not matter)."""
        base = list(self.base[slot] or [])
        must, maybe = next(iter(parts.values())) if parts else ([], [])
        if isinstance(value, str):
            res.phantoms += 1
            res.fail("%s: unexpected reply %s" % (_fmt(slot), value))
            res.new_base[slot] = None
            return
        found = list(value or [])
        res.new_base[slot] = found or None
        sent = base + [op.arg for op in must + maybe]
        need = len(base) + len(must)
        if kind == "seq":
            if len(found) >= need and found == sent[:len(found)]:
                return
            common = 0
            while common < min(len(found), len(sent)) and found[common] == sent[common]:
                common += 1
            explained = common == len(found)  # a strict prefix of what was required: writes lost
        else:
            have = set(found)
            if len(have) == len(found) and have <= set(sent) and set(sent[:need]) <= have:
                extra = len(have) - need
                if set(sent[:need + extra]) == have:
                    return
            explained = have <= set(sent[:need])  # only things that had to be there, some missing
            common = sum(1 for m in sent[:need] if m in have)
        acked = base + [op for op in must]
        if explained and common < need:
            lost = need - common
            res.lost += lost
            when = ""
            first = acked[need - lost] if kind == "seq" else None
            if kind == "set":
                missing = [op for op in must if op.arg not in set(found)]
                first = missing[0] if missing else None
            if crash_time is not None and isinstance(first, Op) and first.recv is not None:
                res.loss_window = max(res.loss_window, crash_time - first.recv)
                res.lost_after_signal += sum(1 for op in must if op.recv > crash_time
                                             and op.arg not in set(found))
                when = ", the first acknowledged %+.1f ms relative to the kill/SIGTERM" % (
                    (first.recv - crash_time) * 1000)
            res.fail("%s: found %d element(s), expected at least %d: %d acknowledged write(s) lost%s"
                     % (_fmt(slot), len(found), need, lost, when))
        else:
            res.phantoms += 1
            res.fail("%s: found %d element(s) not explained by the writes sent (expected %d acknowledged "
                     "+ up to %d in flight, in order): phantom, reordered or duplicated element"
                     % (_fmt(slot), len(found), need, len(maybe)))

    def adopt(self, res):
        """The recovered state becomes the base of the next cycle (counters continue from it)."""
        self.base.update(res.new_base)
