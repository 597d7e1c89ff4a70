"""Runs the curated case files against both servers in RESP2 and RESP3 and compares every reply."""
import glob
import os
import time

from ..common.resp import (Connection, ConnectionClosed, ProtocolViolation, ReplyTimeout, encode_command,
                           format_reply)
from .casefile import parse_file
from .compare import same

CASES_DIR = os.path.join(os.path.dirname(__file__), "cases")


class _Side:
    """The connections one server uses for one group."""

    def __init__(self, server, proto):
        self.server = server
        self.proto = proto
        self.conns = {}

    def conn(self, n):
        c = self.conns.get(n)
        if c is None or c.closed:
            c = Connection(self.server.port)
            if self.proto == 3:
                raw, _ = c.command("HELLO", "3")
                if not raw.startswith(b"%"):
                    raise ConnectionClosed("HELLO 3 refused: %r" % raw[:80])
            self.conns[n] = c
        return c

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def _exchange(side, step):
    """Sends one step on one side; returns (raw, parsed) or (marker bytes, None) on failure."""
    try:
        c = side.conn(step.conn)
        if step.directive in ("raw", "rawrep"):
            if step.directive == "raw":
                c.send(b"".join(step.dargs))
            else:
                c.send(step.dargs[1] * int(step.dargs[0]) + b"".join(step.dargs[2:]))
            data, closed = c.read_until_close(idle=0.5, limit=5.0)
            if closed:
                c.close()
            return data + (b"<closed>" if closed else b"<open>"), None
        if step.directive == "closed":
            data, closed = c.read_until_close(idle=1.0, limit=3.0)
            if closed:
                c.close()
            return data + (b"<closed>" if closed else b"<open>"), None
        if step.directive == "read":
            # One more reply already on its way (a pub/sub message, the next confirmation).
            return c.read_reply(timeout=5.0)
        if step.mode == "scan":
            return _full_scan(c, step.args), None
        c.send(encode_command(step.args))
        return c.read_reply(timeout=5.0)
    except ReplyTimeout:
        side.conns.pop(step.conn, None)
        return b"<timeout>", None
    except ConnectionClosed:
        side.conns.pop(step.conn, None)
        return b"<connection closed>", None
    except ProtocolViolation as e:
        side.conns.pop(step.conn, None)
        return ("<protocol violation: %s>" % e).encode(), None
    except OSError as e:
        side.conns.pop(step.conn, None)
        return ("<cannot connect: %s>" % e).encode(), None


HUNG_LIMIT = 5


def run_group(ref, test, group, proto, family, report, path):
    ok_all = True
    if test.timeouts >= HUNG_LIMIT:
        for step in group:
            if step.directive not in ("sleep", "reconnect"):
                report.record("differential", "%s/resp%d" % (family, proto), False,
                              "%s:%d not run: the server under test stopped answering (%d timeouts)"
                              % (os.path.relpath(path), step.lineno, test.timeouts))
        return False
    a = _Side(ref, proto)
    b = _Side(test, proto)
    try:
        for side in (a, b):
            try:
                raw, _ = side.conn(1).command("FLUSHALL")
            except (OSError, ConnectionClosed, ReplyTimeout, ProtocolViolation) as e:
                raw = ("<%s: %s>" % (type(e).__name__, e)).encode()
            if raw.startswith(b"<ReplyTimeout"):
                side.server.timeouts += 1
            if not raw.startswith(b"+OK"):
                report.record("differential", "%s/resp%d" % (family, proto), False,
                              "%s: FLUSHALL failed on %s: %r" % (path, side.server.name, raw))
                return
        hung = False  # after a timeout the rest of the group is reported, not sent (keeps the run short)
        for step in group:
            if step.directive == "sleep":
                time.sleep(int(step.dargs[0]) / 1000.0)
                continue
            if step.directive == "reconnect":
                for side in (a, b):
                    c = side.conns.pop(step.conn, None)
                    if c:
                        c.close()
                continue
            if hung:
                report.record("differential", "%s/resp%d" % (family, proto), False,
                              "%s:%d (RESP%d) %s\n      not run: the server under test timed out earlier in "
                              "this group" % (os.path.relpath(path), step.lineno, proto, step.text.strip()))
                continue
            raw_a, pa = _exchange(a, step)
            raw_b, pb = _exchange(b, step)
            hung = raw_b == b"<timeout>"
            if hung:
                test.timeouts += 1
            if pa is None or pb is None or step.mode is None:
                ok = raw_a == raw_b
            else:
                ok = same(step.mode, raw_a, pa, raw_b, pb)
            detail = None
            if not ok:
                ok_all = False
                detail = "%s:%d (RESP%d) %s\n      redis: %s\n      test:  %s" % (
                    os.path.relpath(path), step.lineno, proto, step.text.strip(),
                    _show(raw_a, pa), _show(raw_b, pb))
            report.record("differential", "%s/resp%d" % (family, proto), ok, detail)
    finally:
        a.close()
        b.close()
    return ok_all


def _full_scan(c, args):
    """Iterates SCAN from args[1] until the cursor returns to 0; returns the sorted union as bytes."""
    keys = set()
    cursor = args[1]
    for _ in range(100000):
        c.send(encode_command([args[0], cursor] + list(args[2:])))
        raw, reply = c.read_reply(timeout=5.0)
        if reply[0] != "*" or len(reply[1]) != 2:
            return raw
        cursor = reply[1][0][1]
        keys.update(item[1] for item in reply[1][1][1])
        if cursor == b"0":
            return b"<scan>" + b"|".join(repr(k).encode() for k in sorted(keys))
    return b"<scan did not terminate>"


def _show(raw, parsed):
    text = repr(raw)[1:]
    if len(text) > 300:
        text = text[:300] + "...(%d bytes)" % len(raw)
    return text


def run(ref, test, report, only_family=None):
    files = sorted(glob.glob(os.path.join(CASES_DIR, "*.txt")))
    for path in files:
        family = os.path.splitext(os.path.basename(path))[0]
        if only_family and family != only_family:
            continue
        groups = parse_file(path)
        for proto in (2, 3):
            for group in groups:
                first = group[0]
                if first.directive in ("resp2", "resp3"):
                    if first.directive != "resp%d" % proto:
                        continue
                    group = group[1:]
                run_group(ref, test, group, proto, family, report, path)
                for srv in (ref, test):
                    if srv.restart_if_dead():
                        report.record("differential", "%s/resp%d" % (family, proto), False,
                                      "%s crashed during a group of %s (restarted); log tail:\n%s"
                                      % (srv.name, path, srv.log_tail()))
