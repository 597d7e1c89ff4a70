"""redis-cli and redis-benchmark workloads; each check returns (name, ok, detail)."""
import subprocess

from ..common.resp import Connection, encode_command


def _cli(port, args, stdin=None, timeout=20):
    p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + args, input=stdin,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _get_int(port, key):
    c = Connection(port)
    try:
        raw, reply = c.command("GET", key)
        return int(reply[1]) if reply[1] is not None else None
    finally:
        c.close()


def _flush(port):
    c = Connection(port)
    try:
        c.command("FLUSHALL")
    finally:
        c.close()


def redis_cli(port, ref_port):
    out = []
    _flush(port)
    # plain commands and exit codes
    seq = [["SET", "cli:k", "1"], ["INCRBY", "cli:k", "41"], ["GET", "cli:k"], ["INCR"],
           ["INCR", "cli:missing"], ["HSET", "cli:h", "a", "1"], ["GET", "cli:h"], ["NOSUCH", "x"]]
    got = [(a, _cli(port, a)[:2]) for a in seq]
    want_simple = [b"OK\n", b"42\n", b"42\n"]
    out.append(("cli-basic", [g[1][1] for g in got[:3]] == want_simple and all(g[1][0] == 0 for g in got[:3]),
                repr(got[:3])))
    if ref_port != port:
        _flush(ref_port)
        ref = [(a, _cli(ref_port, a)[:2]) for a in seq]
        out.append(("cli-output-and-exit-codes-match-redis", got == ref,
                    "; ".join("%s: %r vs redis %r" % (" ".join(a), g, r) for (a, g), (_, r) in zip(got, ref)
                              if g != r)))
    # --pipe mass insertion: 100k INCRBY, then exact totals
    _flush(port)
    n, keys = 100000, 100
    data = b"".join(encode_command([b"INCRBY", b"cli:counter:%d" % (i % keys), b"%d" % (i % 7 + 1)])
                    for i in range(n))
    rc, so, se = _cli(port, ["--pipe"], stdin=data, timeout=120)
    want = {}
    for i in range(n):
        want[i % keys] = want.get(i % keys, 0) + i % 7 + 1
    got_totals = {k: _get_int(port, "cli:counter:%d" % k) for k in range(keys)}
    out.append(("cli-pipe-100k", rc == 0 and b"errors: 0, replies: %d" % n in so and got_totals == want,
                "rc %d out %r err %r mismatched keys %d" % (rc, so[-200:], se[-200:],
                                                            sum(1 for k in want if want[k] != got_totals[k]))))
    # -x: the last argument from stdin
    rc, so, _ = _cli(port, ["-x", "SET", "cli:x"], stdin=b"hello\nworld\x00\xff")
    c = Connection(port)
    raw, _r = c.command("GET", "cli:x")
    c.close()
    out.append(("cli-x-stdin", rc == 0 and raw == b"$13\r\nhello\nworld\x00\xff\r\n", repr(raw)))
    # --scan --pattern
    c = Connection(port)
    c.send(b"".join(encode_command([b"SET", b"cli:scan:%d" % i, b"1"]) for i in range(300)))
    c.read_replies(300)
    c.close()
    rc, so, _ = _cli(port, ["--scan", "--pattern", "cli:scan:*"])
    found = sorted(so.split())
    out.append(("cli-scan-pattern", rc == 0 and found == sorted(b"cli:scan:%d" % i for i in range(300)),
                "found %d keys" % len(found)))
    # -r N repeats
    rc, so, _ = _cli(port, ["-r", "250", "INCR", "cli:r"])
    out.append(("cli-repeat", rc == 0 and _get_int(port, "cli:r") == 250 and so.split()[-1] == b"250",
                repr(so[-40:])))
    # INFO: sections and parsable fields
    rc, so, _ = _cli(port, ["INFO"])
    fields = {}
    for line in so.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
    problems = []
    for k in ("redis_version", "tcp_port", "uptime_in_seconds", "connected_clients", "used_memory",
              "total_commands_processed", "total_connections_received"):
        if k not in fields:
            problems.append("missing " + k)
        elif k != "redis_version" and not fields[k].isdigit():
            problems.append("%s not an integer: %r" % (k, fields[k]))
    if fields.get("tcp_port") not in (None, str(port)):
        problems.append("tcp_port %s != %d" % (fields.get("tcp_port"), port))
    db0 = fields.get("db0", "")
    if not db0.startswith("keys=") or "expires=" not in db0:
        problems.append("db0 keyspace line %r" % db0)
    if "# Server" not in so.decode(errors="replace") or "# Keyspace" not in so.decode(errors="replace"):
        problems.append("missing # Server / # Keyspace sections")
    out.append(("cli-info", rc == 0 and not problems, "; ".join(problems)))
    # --raw and --no-raw output equal to redis-server's for the same commands
    if ref_port != port:
        cmds = [["GET", "cli:none"], ["SET", "cli:o", "hello world"], ["GET", "cli:o"], ["INCR", "cli:i"],
                ["INCRBYFLOAT", "cli:f", "1.5"], ["HSET", "cli:oh", "a", "1", "b", "2"], ["HGETALL", "cli:oh"],
                ["MGET", "cli:o", "cli:none", "cli:i"], ["TTL", "cli:o"], ["INCR", "cli:o"], ["EXISTS", "cli:o"],
                ["SET", "cli:bin", "a\x01b\xc3\xa9"], ["GET", "cli:bin"], ["KEYS", "cli:oh"], ["TYPE", "cli:oh"],
                ["PING"], ["ECHO", "x y"], ["HKEYS", "cli:none"]]
        for mode in ("--no-raw", "--raw"):
            diffs = []
            for srv in (port, ref_port):
                c = Connection(srv)
                c.command("DEL", "cli:o", "cli:i", "cli:f", "cli:oh", "cli:bin")
                c.close()
            for cmd in cmds:
                a = _cli(port, [mode] + cmd)[:2]
                b = _cli(ref_port, [mode] + cmd)[:2]
                if a != b:
                    diffs.append("%s: %r vs redis %r" % (" ".join(cmd), a, b))
            out.append(("cli%s-output" % mode, not diffs, "; ".join(diffs)))
    return out


def redis_benchmark(port, ref_port, long=False):
    out = []
    _flush(port)
    n = 100000 if long else 20000
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "incr,get,set", "-n", str(n),
                        "-r", "1000", "-c", "20", "-q"], capture_output=True, timeout=120)
    text = (p.stdout + p.stderr).decode(errors="replace")
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if "requests per second" in ln]
    tests = {ln.split(":")[0].strip() for ln in lines}
    bad = [ln for ln in text.splitlines() if "ERR" in ln or "rror" in ln]
    out.append(("benchmark-runs", p.returncode == 0 and {"SET", "GET", "INCR"} <= tests and not bad,
                "rc %d tests %s errors %r" % (p.returncode, sorted(tests), bad[:3])))
    c = Connection(port)
    try:
        total, cursor, keys = 0, b"0", 0
        while True:
            raw, reply = c.command("SCAN", cursor, "MATCH", "counter:*", "COUNT", "1000")
            cursor = reply[1][0][1]
            names = [x[1] for x in reply[1][1][1]]
            if names:
                c.send(encode_command([b"MGET"] + names))
                raw, vals = c.read_reply()
                total += sum(int(v[1]) for v in vals[1])
                keys += len(names)
            if cursor == b"0":
                break
    finally:
        c.close()
    out.append(("benchmark-incr-sum", total == n, "sum of %d counter:* keys = %d, want %d" % (keys, total, n)))
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "incr", "-n", str(n),
                        "-P", "16", "-c", "10", "-q"], capture_output=True, timeout=120)
    v = _get_int(port, "counter:__rand_int__")
    out.append(("benchmark-pipelined-incr", p.returncode == 0 and v == n, "counter:__rand_int__ = %s want %d"
                % (v, n)))
    return out
