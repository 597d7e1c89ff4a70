#!/usr/bin/env python3
"""Unit tests of the crash checker's model: each kind of violation it claims to detect is detected.

Run: python3 conformance/crash/test_model.py"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crashtest.model import ALL_ACKED, Model, Op, Window  # noqa: E402
from crashtest.workload import KeyPlan  # noqa: E402

WALL0 = 1_700_000_000.0


class Clock:
    """Hands out increasing monotonic instants so tests can state the order of sends and replies."""

    def __init__(self):
        self.t = 100.0

    def tick(self):
        self.t += 1.0
        return self.t


def op(clock, slot, worker, arg, acked=True, block=None, error=None):
    o = Op(slot, worker, arg, block)
    o.send = clock.tick()
    o.wall_send = WALL0 + o.send
    if acked:
        o.recv = clock.tick()
        o.wall_recv = WALL0 + o.recv
    o.error = error
    return o


class ModelTests(unittest.TestCase):
    def setUp(self):
        self.plan = KeyPlan(2)
        self.model = Model(self.plan)
        self.clock = Clock()
        self.owned = self.plan.owned_counters[0][0]
        self.shared = self.plan.shared_counters[0]
        self.ttl = self.plan.ttl_keys[0][0]
        self.group = self.plan.groups[0]

    def observed(self, **overrides):
        obs = {}
        for slot, meta in self.plan.slots.items():
            obs[slot] = (None, -2, WALL0 + 1e6, WALL0 + 1e6) if meta.kind == "ttl" else None
        obs.update(overrides)
        return obs

    def check(self, logs, obs, window=ALL_ACKED, fill=None):
        return self.model.check(logs, window, obs, fill or {}, [], self.clock.tick())

    def test_all_acknowledged_present_passes(self):
        log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, -3)]
        res = self.check([log], self.observed(**{}) | {self.owned: 2})
        self.assertTrue(res.ok, res.failures)
        self.assertEqual(res.acked, 2)

    def test_lost_acknowledged_write_is_reported(self):
        log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, -3)]
        res = self.check([log], self.observed() | {self.owned: 5})
        self.assertEqual(res.lost, 1)
        self.assertFalse(res.ok)

    def test_in_flight_may_or_may_not_be_applied(self):
        for value in (5, 12):
            self.setUp()
            log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, 7, acked=False)]
            res = self.check([log], self.observed() | {self.owned: value})
            self.assertTrue(res.ok, res.failures)

    def test_vanished_key_from_an_earlier_cycle_is_lost(self):
        self.model.base[self.shared] = 42
        self.assertEqual(self.check([], self.observed()).lost, 1)
        self.setUp()
        self.model.base[self.shared] = 42
        self.assertTrue(self.check([], self.observed() | {self.shared: 42}).ok)

    def test_wrong_reply_is_reported(self):
        a, b = op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, 7)
        a.reply, b.reply = 5, 19
        res = self.check([[a, b]], self.observed() | {self.owned: 12})
        self.assertEqual(res.bad_replies, 1)
        self.setUp()
        b.reply = 12
        self.assertTrue(self.check([[a, b]], self.observed() | {self.owned: 12}).ok)

    def test_double_applied_write_is_a_phantom(self):
        log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, 7)]
        res = self.check([log], self.observed() | {self.owned: 19})
        self.assertEqual(res.phantoms, 1)

    def test_error_reply_means_not_applied(self):
        log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, 7, error="ERR x")]
        self.assertTrue(self.check([log], self.observed() | {self.owned: 5}).ok)
        self.setUp()
        log = [op(self.clock, self.owned, 0, 5), op(self.clock, self.owned, 0, 7, error="ERR x")]
        self.assertEqual(self.check([log], self.observed() | {self.owned: 12}).phantoms, 1)

    def test_shared_key_allows_any_subset_of_in_flight_writes(self):
        a = [op(self.clock, self.shared, 0, 10), op(self.clock, self.shared, 0, 100, acked=False)]
        b = [op(self.clock, self.shared, 1, 1), op(self.clock, self.shared, 1, 1000, acked=False)]
        for value in (11, 111, 1011, 1111):
            self.setUp()
            self.assertTrue(self.check([a, b], self.observed() | {self.shared: value}).ok, value)
        self.setUp()
        self.assertFalse(self.check([a, b], self.observed() | {self.shared: 112}).ok)
        self.setUp()
        self.assertEqual(self.check([a, b], self.observed() | {self.shared: 10}).lost, 1)

    def test_torn_multi_block_is_detected(self):
        log = []
        for block, deltas in ((1, (1, 2, 3)), (2, (10, 20, 30))):
            send = self.clock.tick()
            recv = None
            for slot, d in zip(self.group, deltas):
                o = Op(slot, 0, d, (0, block))
                o.send, o.recv = send, recv
                log.append(o)
        values = {self.group[0]: 11, self.group[1]: 2, self.group[2]: 33}  # block 2 applied to 2 of 3 keys
        res = self.check([log], self.observed() | values)
        self.assertEqual(res.torn, 1)
        self.setUp()
        res = self.check([log], self.observed() | {self.group[0]: 11, self.group[1]: 22, self.group[2]: 33})
        self.assertTrue(res.ok, res.failures)

    def test_rdb_window(self):
        before = op(self.clock, self.owned, 0, 5)
        ta = self.clock.tick()
        during = op(self.clock, self.owned, 0, 7)  # sent after BGSAVE was sent, answered before its reply
        tb = self.clock.tick()
        after = op(self.clock, self.owned, 0, 100)
        window = Window(ta, tb, "BGSAVE")
        for value, ok in ((5, True), (12, True), (112, False), (None, False)):
            self.setUp()
            res = self.check([[before, during, after]], self.observed() | {self.owned: value}, window)
            self.assertEqual(res.ok, ok, (value, res.failures))
        self.assertEqual(res.discarded, 2)

    def test_ttl_key(self):
        s = op(self.clock, self.ttl, 0, (b"tok1", 5))
        now = WALL0 + self.clock.tick()
        deadline_ok = s.wall_send + 5 - now
        good = (b"tok1", int(deadline_ok * 1000), now, now + 0.001)
        self.assertTrue(self.check([[s]], self.observed() | {self.ttl: good}).ok)
        self.setUp()
        self.assertEqual(self.check([[s]], self.observed() | {self.ttl: (b"tok1", -1, now, now)}).bad_ttl, 1)
        self.setUp()
        self.assertEqual(self.check([[s]], self.observed() | {self.ttl: (None, -2, now, now)}).lost, 1)
        self.setUp()
        late = s.wall_send + 6
        self.assertTrue(self.check([[s]], self.observed() | {self.ttl: (None, -2, late, late)}).ok)
        self.setUp()
        self.assertEqual(self.check([[s]], self.observed() | {self.ttl: (b"other", 3000, now, now)}).phantoms, 1)

    def test_filler_and_unknown_keys(self):
        self.model.fill = {b"ct:f:0": 3, b"ct:f:1": 4}
        res = self.model.check([], ALL_ACKED, self.observed(), {b"ct:f:0": 3, b"ct:f:1": None}, [b"zzz"], None)
        self.assertEqual(res.lost, 1)
        self.assertEqual(res.phantoms, 1)

    def seq_log(self, slot, args, acked_flags):
        return [op(self.clock, slot, 0, a, acked=f) for a, f in zip(args, acked_flags)]

    def test_list_must_be_acked_prefix_plus_in_flight(self):
        lst = self.plan.lists[0][0]
        toks = [b"a", b"b", b"c"]
        for found, lost, phantoms in ((toks[:2], 0, 0), (toks, 0, 0), (toks[:1], 1, 0), (None, 2, 0),
                                      ([b"b", b"a"], 0, 1), ([b"a", b"c"], 0, 1), (toks + [b"x"], 0, 1),
                                      ([b"a", b"b", b"b"], 0, 1)):
            self.setUp()
            log = self.seq_log(lst, toks, (True, True, False))
            res = self.check([log], self.observed() | {lst: found})
            self.assertEqual((res.lost, res.phantoms), (lost, phantoms), (found, res.failures))

    def test_list_continues_from_the_recovered_base(self):
        lst = self.plan.lists[0][0]
        self.model.base[lst] = [b"old"]
        log = self.seq_log(lst, [b"a"], (True,))
        self.assertTrue(self.check([log], self.observed() | {lst: [b"old", b"a"]}).ok)
        self.assertEqual(self.check([], self.observed() | {lst: [b"a"]}).phantoms, 1)
        self.model.base[lst] = [b"old"]
        self.assertEqual(self.check([], self.observed()).lost, 1)

    def test_stream_entries_are_checked_with_their_ids(self):
        xs = self.plan.streams[0][0]
        args = [(b"1-1", b"a"), (b"2-1", b"b")]
        log = self.seq_log(xs, args, (True, False))
        self.assertTrue(self.check([log], self.observed() | {xs: args[:1]}).ok)
        log = self.seq_log(xs, args, (True, True))
        self.assertEqual(self.check([log], self.observed() | {xs: args[:1]}).lost, 1)
        log = self.seq_log(xs, args, (True, True))
        self.assertEqual(self.check([log], self.observed() | {xs: [(b"1-1", b"a"), (b"3-1", b"b")]}).phantoms, 1)

    def test_set_members(self):
        st = self.plan.sets[0][0]
        toks = [b"a", b"b", b"c", b"d"]
        for found, lost, phantoms in (([b"b", b"a"], 0, 0), ([b"c", b"a", b"b"], 0, 0), (toks, 0, 0),
                                      ([b"a"], 1, 0), (None, 2, 0), ([b"a", b"b", b"z"], 0, 1),
                                      ([b"a", b"b", b"d"], 0, 1)):  # d without c: not a prefix
            self.setUp()
            log = self.seq_log(st, toks, (True, True, False, False))
            res = self.check([log], self.observed() | {st: found})
            self.assertEqual((res.lost, res.phantoms), (lost, phantoms), (found, res.failures))

    def test_rdb_window_for_a_list(self):
        lst = self.plan.lists[0][0]
        log = self.seq_log(lst, [b"a", b"b"], (True, True))
        w = Window(log[1].send - 0.5, log[1].send - 0.5, "snapshot")
        self.assertTrue(self.check([log], self.observed() | {lst: [b"a"]}, window=w).ok)
        self.assertEqual(self.check([log], self.observed() | {lst: [b"a", b"b"]}, window=w).phantoms, 1)

    def test_zincrby_member_is_a_counter(self):
        z = self.plan.zmembers[0][0]
        log = [op(self.clock, z, 0, 5), op(self.clock, z, 0, 7, acked=False)]
        self.assertTrue(self.check([log], self.observed() | {z: 12}).ok)
        self.assertEqual(self.check([log], self.observed() | {z: None}).lost, 1)
        self.assertEqual(self.check([log], self.observed() | {z: 10}).phantoms, 1)


if __name__ == "__main__":
    unittest.main()
