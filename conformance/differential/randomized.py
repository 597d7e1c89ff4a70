"""Seeded random command streams over a small key set, sent pipelined to both servers; a mismatch is shrunk
to a minimal reproducer by delta debugging (replaying from FLUSHALL)."""
import random
import time

from ..common.resp import Connection, ConnectionClosed, ProtocolViolation, ReplyTimeout, encode_command
from .compare import same

KEYS = [b"k0", b"k1", b"k2", b"h0", b"h1", b"", b"\x00\xff", b"caf\xc3\xa9", b"cafe\xcc\x81"]
FIELDS = [b"f0", b"f1", b"f2", b"", b"\xff"]
INTS = [b"0", b"1", b"-1", b"7", b"100", b"+1", b" 1", b"01", b"-0", b"9223372036854775807",
        b"9223372036854775808", b"-9223372036854775808", b"-9223372036854775809", b"4611686018427387904",
        b"abc", b"1.5", b""]
FLOATS = [b"0.1", b"0.2", b"-1.5", b"1e3", b"5.0e3", b"3", b"-0", b"1e400", b"1e-400", b"inf", b"nan",
          b"0x10", b" 1", b"1.7976931348623157e308", b"abc", b"10.5"]
BIT_OFFSETS = [b"0", b"1", b"7", b"8", b"15", b"31", b"100", b"-1", b"x", b"4294967296"]
SCORES = [b"0", b"1", b"-1", b"2.5", b"1e3", b"-0", b"inf", b"-inf", b"0.1", b"x", b"nan", b"3", b"10"]
SCORE_BOUNDS = [b"-inf", b"+inf", b"0", b"(0", b"1", b"(2.5", b"3", b"10", b"(inf", b"x", b"(-1"]
LEX_BOUNDS = [b"-", b"+", b"[f0", b"(f1", b"[f2", b"[", b"(", b"f1", b"[\xff"]
VALUES = [b"v", b"", b"10", b"-3", b"hello world", b"\x00\x01\xff", b"3.5", b"12345678901234567890"]
STREAM_LEN = 4000
BATCH = 400
# Longitude, latitude pairs for the geo commands (the limits and a few invalid ones included).
GEO_POINTS = [(b"0", b"0"), (b"13.361389", b"38.115556"), (b"15.087269", b"37.502669"), (b"180", b"85.05112878"),
              (b"-180", b"-85.05112878"), (b"-0.1", b"51.5"), (b"200", b"0"), (b"0", b"86"), (b"x", b"1")]
GEO_SIZES = [b"0", b"1", b"100", b"500", b"20000", b"-1", b"x"]
GEO_UNITS = [b"m", b"km", b"KM", b"mi", b"ft", b"yd"]


class Op:
    __slots__ = ("args", "mode", "poison")

    def __init__(self, args, mode=None, poison=False):
        self.args = args
        self.mode = mode
        self.poison = poison  # rejected at queue time (unknown command, wrong arity): aborts a MULTI

    def text(self):
        return " ".join(_quote(a) for a in self.args)


def _quote(b):
    if b and all(33 <= c < 127 and c not in b'"\'\\' for c in b):
        return b.decode()
    out = '"'
    for c in b:
        if c == 0x22:
            out += '\\"'
        elif c == 0x5C:
            out += "\\\\"
        elif 32 <= c < 127:
            out += chr(c)
        else:
            out += "\\x%02x" % c
    return out + '"'


class Generator:
    """Produces Ops; tracks MULTI nesting so EXEC replies get per-element comparison modes."""

    def __init__(self, rng, exclude=()):
        self.r = rng
        self.exclude = set(exclude)
        self.in_multi = False
        self.queued_modes = []
        self.queue_poisoned = False
        self.relative_counter = 0

    def key(self):
        return self.r.choice(KEYS)

    def int_arg(self):
        r = self.r
        return r.choice(INTS) if r.random() < 0.3 else str(r.randint(-1000, 1000)).encode()

    def value(self):
        r = self.r
        x = r.random()
        if x < 0.4:
            return str(r.randint(-50, 50)).encode()
        return r.choice(VALUES)

    def member(self):
        r = self.r
        return str(r.randint(-5, 20)).encode() if r.random() < 0.6 else r.choice(VALUES + FIELDS)

    def expiry_seconds(self):
        r = self.r
        # Only far-away, non-positive or invalid expiries: a short one would expire at slightly different
        # moments on the two servers and make the streams diverge for reasons other than a bug.
        return r.choice([b"1000", b"5000", b"0", b"-5", b"9223372036854775807", b"abc", b"100000"])

    def future_unix(self, ms=False):
        t = int(time.time()) + self.r.choice([1000, 5000, -1000, -10])
        if self.r.random() < 0.1:
            return b"1"
        return str(t * 1000 if ms else t).encode()

    def one(self):
        r = self.r
        k = self.key()
        f = r.choice(FIELDS)
        choices = [
            (12, lambda: Op([b"INCR", k])),
            (4, lambda: Op([b"DECR", k])),
            (10, lambda: Op([b"INCRBY", k, self.int_arg()])),
            (4, lambda: Op([b"DECRBY", k, self.int_arg()])),
            (5, lambda: Op([b"INCRBYFLOAT", k, r.choice(FLOATS)])),
            (8, lambda: Op([b"GET", k])),
            (8, lambda: self.set_op(k)),
            (2, lambda: Op([b"SETNX", k, self.value()])),
            (1, lambda: Op([b"SETEX", k, self.expiry_seconds(), self.value()])),
            (1, lambda: Op([b"PSETEX", k, r.choice([b"1000000", b"0", b"-1"]), self.value()])),
            (2, lambda: Op([b"GETSET", k, self.value()])),
            (2, lambda: Op([b"GETDEL", k])),
            (2, lambda: self.getex_op(k)),
            (3, lambda: Op([b"MGET"] + [self.key() for _ in range(r.randint(1, 4))])),
            (2, lambda: Op([b"MSET"] + [x for _ in range(r.randint(1, 3)) for x in (self.key(), self.value())])),
            (2, lambda: Op([b"MSETNX"] + [x for _ in range(r.randint(1, 3)) for x in (self.key(), self.value())])),
            (3, lambda: Op([b"APPEND", k, self.value()])),
            (2, lambda: Op([b"STRLEN", k])),
            (2, lambda: Op([b"GETRANGE", k, self.int_arg(), self.int_arg()])),
            (2, lambda: Op([b"SETRANGE", k, r.choice([b"0", b"3", b"-1", b"20", b"536870912", b"x"]),
                            self.value()])),
            (2, lambda: Op([b"SETBIT", k, r.choice(BIT_OFFSETS), r.choice([b"0", b"1", b"1", b"2"])])),
            (2, lambda: Op([b"GETBIT", k, r.choice(BIT_OFFSETS)])),
            (2, lambda: Op([b"BITCOUNT", k] + self.bit_range())),
            (2, lambda: Op([b"BITPOS", k, r.choice([b"0", b"1", b"1", b"2"])] + self.bit_range())),
            (1, lambda: Op([b"BITOP", r.choice([b"AND", b"OR", b"XOR", b"NOT", b"nand"]), k]
                           + [self.key() for _ in range(r.randint(1, 3))])),
            (2, lambda: self.bitfield_op(k)),
            (3, lambda: Op([b"PFADD", k] + [r.choice(VALUES + FIELDS) for _ in range(r.randint(0, 4))])),
            (2, lambda: Op([b"PFCOUNT"] + [self.key() for _ in range(r.randint(1, 3))])),
            (1, lambda: Op([b"PFMERGE"] + [self.key() for _ in range(r.randint(1, 3))])),
            (1, lambda: Op([b"LCS", k, self.key()] + r.choice([[], [b"LEN"], [b"IDX"], [b"IDX", b"WITHMATCHLEN"],
                                                              [b"IDX", b"MINMATCHLEN", b"2"]]))),
            (8, lambda: Op([b"HINCRBY", k, f, self.int_arg()])),
            (3, lambda: Op([b"HINCRBYFLOAT", k, f, r.choice(FLOATS)])),
            (4, lambda: Op([b"HGET", k, f])),
            (5, lambda: Op([b"HSET", k] + [x for _ in range(r.randint(1, 3)) for x in (r.choice(FIELDS),
                                                                                      self.value())])),
            (1, lambda: Op([b"HMSET", k, f, self.value()])),
            (2, lambda: Op([b"HSETNX", k, f, self.value()])),
            (2, lambda: Op([b"HMGET", k, f, r.choice(FIELDS)])),
            (3, lambda: Op([b"HDEL", k] + [r.choice(FIELDS) for _ in range(r.randint(1, 3))])),
            (2, lambda: Op([b"HLEN", k])),
            (2, lambda: Op([b"HEXISTS", k, f])),
            (3, lambda: Op([b"HGETALL", k], "sorted")),
            (1, lambda: Op([b"HKEYS", k], "sorted")),
            (1, lambda: Op([b"HVALS", k], "sorted")),
            (5, lambda: Op([r.choice([b"RPUSH", b"LPUSH"]), k] + [self.value() for _ in range(r.randint(1, 4))])),
            (1, lambda: Op([r.choice([b"RPUSHX", b"LPUSHX"]), k, self.value()])),
            (4, lambda: Op([r.choice([b"LPOP", b"RPOP"]), k]
                           + ([r.choice([b"0", b"1", b"2", b"5", b"-1"])] if r.random() < 0.4 else []))),
            (2, lambda: Op([b"LLEN", k])),
            (3, lambda: Op([b"LRANGE", k, r.choice([b"0", b"1", b"-2", b"-100"]), r.choice([b"-1", b"2", b"100"])])),
            (1, lambda: Op([b"LINDEX", k, r.choice([b"0", b"-1", b"2", b"50"])])),
            (1, lambda: Op([b"LSET", k, r.choice([b"0", b"-1", b"3", b"50"]), self.value()])),
            (1, lambda: Op([b"LINSERT", k, r.choice([b"BEFORE", b"AFTER"]), self.value(), self.value()])),
            (1, lambda: Op([b"LREM", k, r.choice([b"0", b"1", b"-1", b"2"]), self.value()])),
            (1, lambda: Op([b"LTRIM", k, r.choice([b"0", b"1", b"-3"]), r.choice([b"-1", b"2", b"-2"])])),
            (1, lambda: Op([b"LPOS", k, self.value()] + r.choice([[], [b"RANK", b"-1"], [b"COUNT", b"0"],
                                                                 [b"MAXLEN", b"2", b"COUNT", b"2"]]))),
            (2, lambda: Op([b"LMOVE", k, self.key(), r.choice([b"LEFT", b"RIGHT"]), r.choice([b"LEFT", b"RIGHT"])])),
            (1, lambda: Op([b"RPOPLPUSH", k, self.key()])),
            (1, lambda: Op([b"LMPOP", b"2", k, self.key(), r.choice([b"LEFT", b"RIGHT"]), b"COUNT", b"2"])),
            # Sets: members mix integers (intsets) and strings; order-dependent replies compare sorted,
            # and random picks only where the result is the whole set (or by type).
            (5, lambda: Op([b"SADD", k] + [self.member() for _ in range(r.randint(1, 4))])),
            (3, lambda: Op([b"SREM", k] + [self.member() for _ in range(r.randint(1, 3))])),
            (2, lambda: Op([b"SCARD", k])),
            (2, lambda: Op([b"SISMEMBER", k, self.member()])),
            (1, lambda: Op([b"SMISMEMBER", k, self.member(), self.member()])),
            (3, lambda: Op([b"SMEMBERS", k], "sorted")),
            (1, lambda: Op([b"SRANDMEMBER", k, r.choice([b"100", b"0", b"x"])], "sorted")),
            (1, lambda: Op([b"SRANDMEMBER", k, r.choice([b"-3", b"1"])], "type")),
            (1, lambda: Op([b"SPOP", k, r.choice([b"100", b"0", b"-1"])], "sorted")),
            (2, lambda: Op([b"SMOVE", k, self.key(), self.member()])),
            (2, lambda: Op([r.choice([b"SINTER", b"SUNION", b"SDIFF"])]
                           + [self.key() for _ in range(r.randint(1, 3))], "sorted")),
            (2, lambda: Op([r.choice([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"])]
                           + [self.key() for _ in range(r.randint(2, 4))])),
            (1, lambda: Op([b"SINTERCARD", b"2", k, self.key()] + r.choice([[], [b"LIMIT", b"1"]]))),
            (1, lambda: Op([b"SORT", k] + r.choice([[], [b"DESC", b"LIMIT", b"0", b"2"],
                                                    [b"ALPHA", b"STORE", self.key()]]))),
            # ALPHA without STORE collates as strcoll: members equal up to a NUL byte tie and keep the
            # set's own iteration order, which differs between servers.
            (1, lambda: Op([b"SORT", k, b"ALPHA"], "collated")),
            (5, lambda: self.zadd_op(k)),
            (2, lambda: self.geoadd_op(k)),
            (1, lambda: Op([r.choice([b"GEOPOS", b"GEOHASH"]), k, f, r.choice(FIELDS)])),
            (1, lambda: Op([b"GEODIST", k, f, r.choice(FIELDS)] + r.choice([[], [b"km"], [b"MI"], [b"yd"]]))),
            (1, lambda: Op([b"GEOSEARCH", k, b"FROMLONLAT"] + list(r.choice(GEO_POINTS))
                           + r.choice([[b"BYRADIUS", r.choice(GEO_SIZES), r.choice(GEO_UNITS)],
                                       [b"BYBOX", r.choice(GEO_SIZES), r.choice(GEO_SIZES), r.choice(GEO_UNITS)]])
                           + [b"ASC", b"WITHDIST"] + r.choice([[], [b"WITHCOORD", b"WITHHASH"], [b"COUNT", b"2"]]))),
            (1, lambda: Op([b"GEORADIUSBYMEMBER", k, f, r.choice(GEO_SIZES), r.choice(GEO_UNITS)]
                           + r.choice([[b"STORE", self.key()], [b"STOREDIST", self.key(), b"DESC"],
                                       [b"WITHDIST", b"ASC"], [b"COUNT", b"1", b"ANY"]]))),
            (1, lambda: Op([b"GEOSEARCHSTORE", self.key(), k, b"FROMMEMBER", f, b"BYBOX", r.choice(GEO_SIZES),
                            r.choice(GEO_SIZES), r.choice(GEO_UNITS)] + r.choice([[], [b"STOREDIST"]]))),
            (2, lambda: Op([b"ZINCRBY", k, r.choice(SCORES), r.choice(FIELDS)])),
            (2, lambda: Op([b"ZREM", k] + [r.choice(FIELDS) for _ in range(r.randint(1, 3))])),
            (1, lambda: Op([b"ZCARD", k])),
            (2, lambda: Op([b"ZSCORE", k, f])),
            (1, lambda: Op([b"ZMSCORE", k, f, r.choice(FIELDS)])),
            (1, lambda: Op([r.choice([b"ZRANK", b"ZREVRANK"]), k, f])),
            (1, lambda: Op([b"ZCOUNT", k, r.choice(SCORE_BOUNDS), r.choice(SCORE_BOUNDS)])),
            (1, lambda: Op([b"ZLEXCOUNT", k, r.choice(LEX_BOUNDS), r.choice(LEX_BOUNDS)])),
            (3, lambda: Op([b"ZRANGE", k, r.choice([b"0", b"1", b"-2", b"-100"]), r.choice([b"-1", b"2", b"100"])]
                           + r.choice([[], [b"WITHSCORES"], [b"REV"], [b"REV", b"WITHSCORES"]]))),
            (2, lambda: Op([b"ZRANGE", k, r.choice(SCORE_BOUNDS), r.choice(SCORE_BOUNDS), b"BYSCORE"]
                           + r.choice([[], [b"WITHSCORES"], [b"REV"], [b"LIMIT", b"1", b"2"],
                                       [b"REV", b"LIMIT", b"0", b"-1", b"WITHSCORES"]]))),
            # Lex ranges over members with mixed scores: Redis answers what its walk over the score
            # order finds (the keys stay small, so listpacks, whose walk is deterministic).
            (2, lambda: Op([r.choice([b"ZRANGEBYLEX", b"ZREVRANGEBYLEX"]), k, r.choice(LEX_BOUNDS),
                            r.choice(LEX_BOUNDS)] + r.choice([[], [b"LIMIT", b"0", b"2"], [b"LIMIT", b"1", b"1"],
                                                              [b"LIMIT", b"2", b"-1"], [b"LIMIT", b"-1", b"3"]]))),
            (1, lambda: Op([b"ZRANGE", k, r.choice(LEX_BOUNDS), r.choice(LEX_BOUNDS), b"BYLEX"]
                           + r.choice([[], [b"REV"], [b"LIMIT", b"1", b"2"], [b"REV", b"LIMIT", b"1", b"-1"]]))),
            (1, lambda: Op([b"ZRANGESTORE", self.key(), k, r.choice(LEX_BOUNDS), r.choice(LEX_BOUNDS), b"BYLEX"]
                           + r.choice([[], [b"REV"], [b"LIMIT", b"1", b"1"]]))),
            (1, lambda: Op([r.choice([b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE"]), k, r.choice(SCORE_BOUNDS),
                            r.choice(SCORE_BOUNDS), b"WITHSCORES"])),
            (1, lambda: Op([b"ZRANGESTORE", self.key(), k, b"0", r.choice([b"-1", b"1"])])),
            (1, lambda: Op([r.choice([b"ZREMRANGEBYRANK"]), k, r.choice([b"0", b"-1", b"1"]),
                            r.choice([b"0", b"-1", b"2"])])),
            (1, lambda: Op([b"ZREMRANGEBYSCORE", k, r.choice(SCORE_BOUNDS), r.choice(SCORE_BOUNDS)])),
            (1, lambda: Op([b"ZREMRANGEBYLEX", k, r.choice(LEX_BOUNDS), r.choice(LEX_BOUNDS)])),
            (2, lambda: Op([r.choice([b"ZPOPMIN", b"ZPOPMAX"]), k]
                           + ([r.choice([b"0", b"1", b"2", b"5", b"-1"])] if r.random() < 0.4 else []))),
            (1, lambda: Op([b"ZMPOP", b"2", k, self.key(), r.choice([b"MIN", b"MAX"]), b"COUNT", b"2"])),
            (1, lambda: Op([r.choice([b"BZPOPMIN", b"BZPOPMAX"]), k, self.key(), b"0.01"])),
            (1, lambda: Op([r.choice([b"ZUNION", b"ZINTER", b"ZDIFF"]), b"2", k, self.key(), b"WITHSCORES"])),
            (1, lambda: Op([r.choice([b"ZUNIONSTORE", b"ZINTERSTORE"]), self.key(), b"2", k, self.key()]
                           + r.choice([[], [b"WEIGHTS", b"2", b"-1"], [b"AGGREGATE", b"MAX"]]))),
            (1, lambda: Op([b"ZDIFFSTORE", self.key(), b"2", k, self.key()])),
            (1, lambda: Op([b"ZINTERCARD", b"2", k, self.key()])),
            (9, lambda: self.stream_op(k)),
            (4, lambda: Op([b"DEL"] + [self.key() for _ in range(r.randint(1, 3))])),
            (1, lambda: Op([b"UNLINK", k])),
            (3, lambda: Op([b"EXISTS"] + [self.key() for _ in range(r.randint(1, 3))])),
            (3, lambda: Op([b"TYPE", k])),
            (2, lambda: Op([b"RENAME", k, self.key()])),
            (1, lambda: Op([b"RENAMENX", k, self.key()])),
            (3, lambda: self.expire_op(k)),
            (2, lambda: Op([b"TTL", k], "ttl")),
            (2, lambda: Op([b"PTTL", k], "pttl")),
            (1, lambda: Op([b"EXPIRETIME", k], "ttl")),
            (1, lambda: Op([b"PEXPIRETIME", k], "pttl")),
            (2, lambda: Op([b"PERSIST", k])),
            (1, lambda: Op([b"KEYS", r.choice([b"*", b"k*", b"h?", b"[a-h]*", b"*\\xff", b"caf*"])], "sorted")),
            # DBSIZE counts keys whose expiry has passed until active expiry removes them (Redis 7.0
            # does too), and the two servers' expiry cycles run at different moments, so only the
            # reply's type is compared; the live keys are compared exactly by KEYS * per database.
            (1, lambda: Op([b"DBSIZE"], "type")),
            (1, lambda: Op([b"SELECT", r.choice([b"0", b"0", b"0", b"1", b"16", b"-1", b"x"])])),
            (1, lambda: Op([b"PING"] + ([self.value()] if r.random() < 0.5 else []))),
            (1, lambda: Op([b"ECHO", self.value()])),
            # Scripts (issue 12): a fixed-window limiter, a multi-write script and redis.pcall errors.
            (2, lambda: Op([b"EVAL", b"local c = redis.call('incr', KEYS[1]) if c == 1 then "
                            b"redis.call('expire', KEYS[1], ARGV[1]) end return c", b"1", k,
                            self.expiry_seconds()])),
            (1, lambda: Op([b"EVAL", b"redis.call('hincrby', KEYS[1], ARGV[1], 1) "
                            b"return redis.call('hgetall', KEYS[1])", b"1", k, f], "sorted")),
            (1, lambda: Op([b"EVAL", b"return redis.pcall('incrby', KEYS[1], ARGV[1])", b"1", k,
                            self.int_arg()])),
            (1, lambda: Op([r.choice([b"NOSUCHCMD", b"incrbyx", b"GETT"]), k], poison=True)),
            (1, lambda: Op([r.choice([b"INCR", b"GET", b"HSET", b"INCRBY", b"SET", b"EXPIRE", b"TTL", b"HGET"])],
                           poison=True)),
            (1, lambda: Op([b"EXISTS", k, k, k])),
            (1, lambda: Op([b"MULTI"])),
            (1, lambda: Op([b"EXEC"])),
            (1, lambda: Op([b"DISCARD"])),
            (1, lambda: Op([b"WATCH", k])),
            (1, lambda: Op([b"UNWATCH"])),
            (1, lambda: Op([b"HELLO", r.choice([b"2", b"3"])], "ignore:id")),
            (1, lambda: Op([b"RESET"])),
        ]
        if r.random() < 0.0005:
            return Op([b"FLUSHALL"])
        total = sum(w for w, _ in choices)
        x = r.uniform(0, total)
        for w, make in choices:
            x -= w
            if x <= 0:
                return make()
        return choices[0][1]()

    def stream_id(self):
        r = self.r
        return r.choice([b"1-1", b"1-2", b"2-0", b"2", b"3-*", b"5-5", b"0-1", b"9", b"x", b"-", b"+", b"(2-0",
                         b"18446744073709551615-18446744073709551615", b"0", b"7-1", b"4-4"])

    def stream_op(self, k):
        """Stream commands with explicit ids only (no `*`, no idle times in replies): deterministic."""
        r = self.r
        group = r.choice([b"g1", b"g2", b"nogroup"])
        consumer = r.choice([b"alice", b"bob"])
        trim = r.choice([[], [], [b"MAXLEN", r.choice([b"2", b"0", b"-1"])], [b"MAXLEN", b"~", b"1"],
                         [b"MINID", r.choice([b"2-0", b"x"])], [b"NOMKSTREAM"], [b"MAXLEN", b"1", b"LIMIT", b"1"]])
        choices = [
            (6, lambda: Op([b"XADD", k] + trim + [self.stream_id()]
                           + [x for _ in range(r.randint(1, 2)) for x in (r.choice(FIELDS), self.value())])),
            (2, lambda: Op([b"XLEN", k])),
            (3, lambda: Op([b"XRANGE", k, self.stream_id(), self.stream_id()]
                           + r.choice([[], [b"COUNT", b"2"], [b"COUNT", b"0"]]))),
            (2, lambda: Op([b"XREVRANGE", k, self.stream_id(), self.stream_id()])),
            (2, lambda: Op([b"XDEL", k, self.stream_id()])),
            (1, lambda: Op([b"XTRIM", k] + (trim or [b"MAXLEN", b"3"]))),
            (2, lambda: Op([b"XREAD", b"COUNT", r.choice([b"1", b"5"]), b"STREAMS", k, self.key(),
                            self.stream_id(), r.choice([b"0", b"$"])])),
            (2, lambda: Op([b"XGROUP", b"CREATE", k, group, r.choice([b"0", b"$", b"2-0"])]
                           + r.choice([[], [b"MKSTREAM"], [b"ENTRIESREAD", b"1"]]))),
            (3, lambda: Op([b"XREADGROUP", b"GROUP", group, consumer] + r.choice([[], [b"NOACK"], [b"COUNT", b"1"]])
                           + [b"STREAMS", k, r.choice([b">", b">", b"0"])])),
            (2, lambda: Op([b"XACK", k, group, self.stream_id()])),
            (1, lambda: Op([b"XPENDING", k, group])),
            (1, lambda: Op([b"XCLAIM", k, group, consumer, b"0", self.stream_id(), b"TIME", b"1000", b"JUSTID"])),
            (1, lambda: Op([b"XAUTOCLAIM", k, group, consumer, b"0", b"0", b"COUNT", b"2", b"JUSTID"])),
            (1, lambda: Op([b"XGROUP", r.choice([b"DESTROY", b"SETID", b"DELCONSUMER", b"CREATECONSUMER"]), k, group]
                           + r.choice([[], [b"0"], [consumer]]))),
            (1, lambda: Op([b"XSETID", k, self.stream_id()])),
            (1, lambda: Op([b"XINFO", r.choice([b"STREAM", b"GROUPS"]), k])),
        ]
        total = sum(w for w, _ in choices)
        x = r.uniform(0, total)
        for w, make in choices:
            x -= w
            if x <= 0:
                return make()
        return choices[0][1]()

    def bit_range(self):
        r = self.r
        shape = r.randint(0, 3)
        if shape == 0:
            return []
        ends = [self.int_arg() if r.random() < 0.2 else str(r.randint(-20, 40)).encode() for _ in range(2)]
        if shape == 1:
            return ends[:1]
        if shape == 2:
            return ends
        return ends + [r.choice([b"BIT", b"BYTE", b"bit", b"foo"])]

    def bitfield_op(self, k):
        r = self.r
        args = [r.choice([b"BITFIELD", b"BITFIELD", b"BITFIELD_RO"]), k]
        for _ in range(r.randint(0, 3)):
            kind = r.choice([b"GET", b"SET", b"INCRBY", b"OVERFLOW"])
            if kind == b"OVERFLOW":
                args += [kind, r.choice([b"WRAP", b"SAT", b"FAIL", b"x"])]
                continue
            args += [kind, r.choice([b"u8", b"i8", b"u1", b"i5", b"u63", b"i64", b"u64", b"i16"]),
                     r.choice([b"0", b"3", b"#1", b"13", b"-1", b"x"])]
            if kind != b"GET":
                args.append(self.int_arg())
        return Op(args)

    def geoadd_op(self, k):
        r = self.r
        flags = r.choice([[], [], [b"NX"], [b"XX"], [b"CH"], [b"XX", b"CH"]])
        triples = [x for _ in range(r.randint(1, 3)) for x in list(r.choice(GEO_POINTS)) + [r.choice(FIELDS)]]
        return Op([b"GEOADD", k] + flags + triples)

    def zadd_op(self, k):
        r = self.r
        flags = r.choice([[], [], [], [b"NX"], [b"XX"], [b"GT"], [b"LT", b"CH"], [b"CH"], [b"INCR"], [b"XX", b"GT"]])
        pairs = 1 if b"INCR" in flags else r.randint(1, 3)
        return Op([b"ZADD", k] + flags + [x for _ in range(pairs) for x in (r.choice(SCORES), r.choice(FIELDS))])

    def set_op(self, k):
        r = self.r
        args = [b"SET", k, self.value()]
        opts = [[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], [b"EX", self.expiry_seconds()],
                [b"PX", r.choice([b"1000000", b"0", b"-1"])], [b"EXAT", self.future_unix()],
                [b"PXAT", self.future_unix(ms=True)], [b"BADOPT"]]
        for _ in range(r.choice([0, 0, 0, 1, 1, 2])):
            args += r.choice(opts)
        return Op(args)

    def getex_op(self, k):
        r = self.r
        opt = r.choice([[], [b"PERSIST"], [b"EX", self.expiry_seconds()], [b"PX", b"1000000"],
                        [b"EXAT", self.future_unix()], [b"PXAT", self.future_unix(ms=True)], [b"EX"],
                        [b"PERSIST", b"EX", b"100"]])
        return Op([b"GETEX", k] + opt)

    def expire_op(self, k):
        r = self.r
        cmd = r.choice([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
        flags = r.choice([[], [], [b"NX"], [b"XX"], [b"GT"], [b"LT"], [b"NX", b"XX"], [b"GT", b"LT"], [b"BAD"]])
        if cmd in (b"EXPIRE", b"PEXPIRE") and flags in ([b"GT"], [b"LT"]):
            # GT/LT compare against a TTL set earlier relative to another instant, so an equal
            # relative amount is "greater" or not depending on whether a millisecond ticked in
            # between. Give each such op a distinct whole-second amount, away from the other
            # amounts the generator uses, so the outcome depends on the order only.
            self.relative_counter += 1
            seconds = 1500 + self.relative_counter % 3000
            t = str(seconds if cmd == b"EXPIRE" else seconds * 1000).encode()
        elif cmd == b"EXPIRE":
            t = self.expiry_seconds()
        elif cmd == b"PEXPIRE":
            t = r.choice([b"1000000", b"0", b"-1", b"9223372036854775807"])
        else:
            t = self.future_unix(ms=cmd == b"PEXPIREAT")
        return Op([cmd, k, t] + flags)

    def next(self):
        while True:
            op = self.one()
            if op.args[0].upper() not in self.exclude:
                return op


def assign_modes(ops):
    """Gives each EXEC the per-element modes of the commands queued before it (simulating MULTI state)."""
    in_multi = False
    queued = []
    poisoned = False
    for op in ops:
        name = op.args[0].upper()
        if name == b"MULTI":
            if not in_multi:
                in_multi, queued, poisoned = True, [], False
        elif name == b"RESET":
            in_multi = False
        elif name in (b"EXEC", b"DISCARD"):
            if name == b"EXEC":
                op.mode = ("exec", list(queued)) if in_multi and not poisoned else None
            in_multi = False
        elif in_multi:
            if op.poison:
                poisoned = True
            elif name != b"WATCH":
                queued.append(op.mode)
    return ops


def _connect(server, proto):
    c = Connection(server.port, timeout=10.0)
    if proto == 3:
        c.command("HELLO", "3")
    c.command("FLUSHALL")
    return c


def _run_stream(server, proto, ops):
    """Sends ops in pipelined batches on a fresh connection; returns a list of (raw, parsed) or markers."""
    try:
        c = _connect(server, proto)
    except (OSError, ReplyTimeout, ConnectionClosed, ProtocolViolation) as e:
        return [(("<cannot start the stream: %s: %s>" % (type(e).__name__, e)).encode(), None)]
    out = []
    try:
        for i in range(0, len(ops), BATCH):
            chunk = ops[i:i + BATCH]
            c.send(b"".join(encode_command(op.args) for op in chunk))
            out.extend(c.read_replies(len(chunk), timeout=10.0))
    except (ReplyTimeout, ConnectionClosed, ProtocolViolation) as e:
        out.append((("<%s: %s>" % (type(e).__name__, e)).encode(), None))
    finally:
        c.close()
    return out


def first_mismatch(ref, test, proto, ops):
    """Index of the first op whose replies differ, or None."""
    assign_modes(ops)
    ra = _run_stream(ref, proto, ops)
    rb = _run_stream(test, proto, ops)
    for i in range(min(len(ra), len(rb))):
        (raw_a, pa), (raw_b, pb) = ra[i], rb[i]
        if pa is None or pb is None:
            if raw_a != raw_b:
                return i, ra[i], rb[i]
            continue
        if not same(ops[i].mode, raw_a, pa, raw_b, pb):
            return i, ra[i], rb[i]
    if len(ra) != len(rb):
        i = min(len(ra), len(rb))
        return i, ra[i] if i < len(ra) else (b"<none>", None), rb[i] if i < len(rb) else (b"<none>", None)
    return None


def _kind(op, raw_a, raw_b):
    """What a mismatch looks like: the command and the shape of both replies (error text or type byte)."""
    def shape(raw):
        return raw[:48] if raw[:1] in (b"-", b"!", b"<") else raw[:1]
    return op.args[0].upper(), shape(raw_a), shape(raw_b)


def minimize(ref, test, proto, ops, budget_s=25.0):
    """ddmin over the op list: the smallest subsequence (replayed from FLUSHALL) whose first mismatch is of
    the same kind as the original one (so shrinking does not drift onto a different bug)."""
    deadline = time.monotonic() + budget_s
    m0 = first_mismatch(ref, test, proto, ops)
    if m0 is None:
        return ops, None
    target = _kind(ops[m0[0]], m0[1][0], m0[2][0])

    def still_fails(candidate):
        m = first_mismatch(ref, test, proto, candidate)
        return m is not None and _kind(candidate[m[0]], m[1][0], m[2][0]) == target

    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        size = len(ops) // n
        reduced = False
        for start in range(0, len(ops), max(size, 1)):
            if time.monotonic() > deadline:
                break
            candidate = ops[:start] + ops[start + size:]
            if candidate and still_fails(candidate):
                ops = candidate
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(ops):
                break
            n = min(len(ops), n * 2)
    m = first_mismatch(ref, test, proto, ops)
    if m is not None:
        ops = ops[:m[0] + 1]
    return ops, m


class _State:
    def __init__(self, max_minimized):
        self.minimized = 0
        self.max_minimized = max_minimized
        self.seen = {}
        self.failing_commands = set()


def _streams(ref, test, report, seed, rng, count, state, exclude=(), label="random"):
    for s in range(count):
        proto = 3 if s % 4 == 3 else 2
        gen = Generator(rng, exclude)
        ops = [gen.next() for _ in range(STREAM_LEN)]
        ops.append(Op([b"DISCARD"]))
        for db in (b"0", b"1"):
            ops += [Op([b"SELECT", db]), Op([b"KEYS", b"*"], "sorted")]
        group = "%s/resp%d" % (label, proto)
        if test.timeouts >= 3:
            report.record("differential", group, False, "seed %d stream %d not run: the server under test "
                          "stopped answering (3 or more timeouts)" % (seed, s))
            continue
        m = first_mismatch(ref, test, proto, ops)
        if m is None:
            report.record("differential", group, True)
            continue
        idx, (raw_a, _), (raw_b, _) = m
        no_reply = raw_b.startswith(b"<ReplyTimeout") or raw_b.startswith(b"<cannot start")
        if no_reply:
            test.timeouts += 1
        state.failing_commands.add(ops[idx].args[0].upper())
        where = "seed %d %s stream %d (RESP%d)" % (seed, label, s, proto)
        if exclude:
            where += " excluding %s" % " ".join(sorted(x.decode() for x in exclude))
        detail = ("%s: op #%d `%s`\n      redis: %r\n      test:  %r"
                  % (where, idx, ops[idx].text(), raw_a[:300], raw_b[:300]))
        # One reproducer per kind of mismatch (command name + shape of both replies), so that a single bug
        # hit in many streams does not use up the minimization budget.
        signature = _kind(ops[idx], raw_a, raw_b)
        if signature in state.seen:
            detail += "\n      (same kind of mismatch as %s)" % state.seen[signature]
        elif state.minimized < state.max_minimized and not no_reply:
            state.seen[signature] = "%s stream %d" % (label, s)
            state.minimized += 1
            small, m2 = minimize(ref, test, proto, ops[:idx + 1])
            detail += "\n      minimized reproducer (%d commands, from FLUSHALL, RESP%d):\n        %s" % (
                len(small), proto, "\n        ".join(op.text() for op in small))
            if m2 is not None:
                detail += "\n      last reply redis: %r\n      last reply test:  %r" % (m2[1][0][:300],
                                                                                     m2[2][0][:300])
        for srv in (ref, test):
            srv.restart_if_dead()
        report.record("differential", group, False, detail)


def run(ref, test, report, seed, total_ops, max_minimized=8):
    """The main streams, then (if some command mismatched) extra rounds that leave the failing commands out,
    so that one frequent bug does not hide the others behind it."""
    rng = random.Random(seed)
    state = _State(max_minimized)
    _streams(ref, test, report, seed, rng, max(1, total_ops // STREAM_LEN), state)
    exclude = set()
    for _ in range(3):
        if not state.failing_commands - exclude or test.timeouts >= 3:
            break
        exclude |= state.failing_commands
        _streams(ref, test, report, seed, rng, 8, state, exclude, "random-excluding")
