"""Pipelining: one command stream sent in one write, byte by byte, and split at random points must give
the same reply bytes as redis-server gives to the single write."""
import time

from ..common.resp import Connection, ConnectionClosed, ProtocolViolation, ReplyTimeout, encode_command
from .randomized import Generator, Op, assign_modes


def _stream(rng, n):
    gen = Generator(rng)
    ops = [Op([b"SELECT", b"0"])]
    for _ in range(n):
        op = gen.next()
        # Only commands whose reply bytes are fully deterministic: the stream is compared as one blob.
        if op.mode is None and op.args[0].upper() not in (b"MULTI", b"EXEC", b"WATCH", b"SELECT", b"FLUSHALL"):
            ops.append(op)
    ops.append(Op([b"PING"]))
    ops.append(Op([b"INCRBY", b"pipeline:end", b"1"]))
    assign_modes(ops)
    return ops


def _send(server, data, pieces, count, inline=False):
    """Sends `data` cut at the given offsets, then reads `count` replies; returns the reply bytes."""
    try:
        c = Connection(server.port, timeout=10.0)
    except OSError as e:
        return ("<cannot connect: %s>" % e).encode()
    try:
        raw, _ = c.command("FLUSHALL")
        prev = 0
        for cut in pieces + [len(data)]:
            if cut > prev:
                c.send(data[prev:cut])
                prev = cut
        replies = c.read_replies(count, timeout=60.0)
        return b"".join(r for r, _ in replies)
    except (ReplyTimeout, ConnectionClosed, ProtocolViolation) as e:
        return ("<%s: %s>" % (type(e).__name__, e)).encode()
    finally:
        c.close()


def _first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def run(ref, test, report, rng, long=False):
    rounds = 6 if long else 2
    for r in range(rounds):
        ops = _stream(rng, 300)
        data = b"".join(encode_command(op.args) for op in ops)
        # Inline commands mixed in: redis accepts them between multi-bulk requests.
        data += b"PING\r\nECHO inline\r\nINCR pipeline:inline\r\n"
        count = len(ops) + 3
        expected = _send(ref, data, [], count)
        variants = [("single-write", []),
                    ("byte-by-byte", list(range(1, len(data)))),
                    ("random-splits", sorted(rng.sample(range(1, len(data)), min(60, len(data) - 1)))),
                    ("two-halves", [len(data) // 2])]
        own = {srv.name: _send(srv, data, [], count) for srv in (ref, test)}
        for name, cuts in variants:
            for srv in (ref, test):
                if srv.timeouts >= 3:
                    report.record("differential", "pipelining/%s" % srv.name, False,
                                  "pipelining %s round %d not run: %s stopped answering" % (name, r, srv.name))
                    continue
                got = _send(srv, data, cuts, count)
                if got.startswith(b"<ReplyTimeout"):
                    srv.timeouts += 1
                if name != "single-write":
                    # Self-consistency separates framing bugs from plain command differences.
                    same_own = got == own[srv.name]
                    report.record("differential", "pipelining-self/%s" % srv.name, same_own,
                                  None if same_own else "pipelining %s round %d on %s: differs from its own "
                                  "single-write replies at byte %d" % (name, r, srv.name,
                                                                       _first_diff(own[srv.name], got)))
                ok = got == expected
                detail = None
                if not ok:
                    i = _first_diff(expected, got)
                    detail = ("pipelining %s round %d on %s: replies differ at byte %d of %d\n"
                              "      redis (single write): %r\n      got: %r"
                              % (name, r, srv.name, i, len(expected), expected[max(0, i - 60):i + 120],
                                 got[max(0, i - 60):i + 120]))
                report.record("differential", "pipelining/%s" % srv.name, ok, detail)
