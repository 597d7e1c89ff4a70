"""COMMAND INFO parity: every command and subcommand the server under test lists, against redis-server.

For each name in the test server's COMMAND LIST, `COMMAND INFO name` is sent to both servers in RESP2 and
RESP3 and the replies are compared byte for byte after three documented normalizations:
- the free-text `notes` of Redis's key specs are dropped (Tally leaves Redis's prose out);
- subcommand entries are sorted by name (Redis lists them in its dict's order, randomised per process);
- a container's subcommand entries are compared for the subcommands both servers have (Tally lacks
  CLIENT TRACKING, MEMORY PURGE...; CLIENT SETINFO is Redis 7.2's): the names only one side lists are
  printed, not failed.
Names redis-server does not know (Tally's own INCREX) are skipped.

INFO parity: the field names of the sections whose fields do not depend on the server's history
(clients, memory, stats, cpu, cluster) must be redis-server's, in its order, and `INFO everything`
must list its sections in redis-server's order; the values differ by nature and are not compared.
Fields listed in INFO_FIELDS_LEFT_OUT are Tally's documented gaps. Run alone with
`python3 -m conformance.differential.commandinfo --server-bin PATH [--verbose]`.
"""
from ..common.resp import Connection, format_reply

SECTION = "commandinfo"


def _drop_notes(spec):
    """A key-spec map without its notes pair (maps are flat key, value lists in both protocols)."""
    kind, items = spec
    if not isinstance(items, list):
        return spec
    kept = []
    for i in range(0, len(items) - 1, 2):
        if items[i][1] == b"notes":
            continue
        kept += [items[i], items[i + 1]]
    return (kind, kept)


def normalize(entry, keep=None):
    """One COMMAND INFO entry with notes dropped and subcommands sorted (and limited to the names in
    `keep` when given), recursively."""
    kind, items = entry
    if not isinstance(items, list) or len(items) < 10:
        return entry
    items = list(items)
    key_kind, specs = items[8]
    if isinstance(specs, list):
        items[8] = (key_kind, [_drop_notes(s) for s in specs])
    sub_kind, subs = items[9]
    if isinstance(subs, list):
        subs = [normalize(s, keep) for s in subs
                if keep is None or not isinstance(s[1], list) or s[1][0][1].decode() in keep]
        subs.sort(key=lambda s: s[1][0][1] if isinstance(s[1], list) and s[1] else b"")
        items[9] = (sub_kind, subs)
    return (kind, items)


def encode(reply):
    """Serializes a parsed reply back to RESP bytes (the comparison is on these bytes)."""
    kind, payload = reply
    if payload is None:
        return b"%s-1\r\n" % kind.encode() if kind in "$*" else b"_\r\n"
    if isinstance(payload, list):
        n = len(payload) // 2 if kind == "%" else len(payload)
        return b"%s%d\r\n" % (kind.encode(), n) + b"".join(encode(x) for x in payload)
    if isinstance(payload, int):
        return b":%d\r\n" % payload
    if kind in "$!=":
        return b"%s%d\r\n%s\r\n" % (kind.encode(), len(payload), payload)
    return kind.encode() + payload + b"\r\n"


def _connect(server, proto):
    c = Connection(server.port)
    if proto == 3:
        c.command("HELLO", "3")
    return c


def names(server):
    """The server's COMMAND LIST (commands and container|subcommand names)."""
    c = _connect(server, 2)
    try:
        _, reply = c.command("COMMAND", "LIST")
        return [item[1].decode() for item in reply[1]]
    finally:
        c.close()


def _list(server, *filters):
    c = _connect(server, 2)
    try:
        _, reply = c.command("COMMAND", "LIST", *filters)
        if reply[0] == "-":
            return reply[1]
        return {item[1].decode() for item in reply[1]}
    finally:
        c.close()


def check_list_filters(ref, test, both, report, verbose=False):
    """COMMAND LIST FILTERBY ACLCAT / PATTERN: the same names, among those both servers have (the
    order is Redis's dict order, so the lists are compared as sets)."""
    c = _connect(ref, 2)
    try:
        _, reply = c.command("ACL", "CAT")
        categories = [item[1].decode() for item in reply[1]]
    finally:
        c.close()
    filters = [("ACLCAT", cat) for cat in categories] + [("ACLCAT", "nosuch")]
    filters += [("PATTERN", p) for p in ("*", "client*", "CLIENT|*", "*|get*", "z*store", "[gs]et", "nosuch")]
    filters += [("MODULE", "nosuch")]
    for kind, value in filters:
        rr = _list(ref, "FILTERBY", kind, value)
        tr = _list(test, "FILTERBY", kind, value)
        if isinstance(rr, set) and isinstance(tr, set):
            ok = (rr & both) == (tr & both)
        else:
            ok = rr == tr
        detail = None
        if not ok:
            if isinstance(rr, set) and isinstance(tr, set):
                rr, tr = sorted((rr & both) - tr), sorted((tr & both) - rr)
            detail = "COMMAND LIST FILTERBY %s %s\n  only redis: %s\n  only test:  %s" % (kind, value, rr, tr)
            if verbose:
                print(detail)
        report.record(SECTION, "COMMAND LIST FILTERBY", ok, detail)


# Redis's main-thread CPU figures: Tally runs commands on every I/O thread, there is no main thread.
INFO_FIELDS_LEFT_OUT = {"used_cpu_sys_main_thread", "used_cpu_user_main_thread"}


def _info_fields(server, section):
    c = _connect(server, 2)
    try:
        _, reply = c.command("INFO", section)
    finally:
        c.close()
    lines = reply[1].decode().split("\r\n")
    return [line.split(":")[0] for line in lines if line and (line.startswith("#") or ":" in line)]


def check_info_fields(ref, test, report, verbose=False):
    for section in ("clients", "memory", "stats", "cpu", "cluster"):
        rf = [f for f in _info_fields(ref, section) if f not in INFO_FIELDS_LEFT_OUT]
        tf = [f for f in _info_fields(test, section) if f not in INFO_FIELDS_LEFT_OUT]
        detail = None
        if rf != tf:
            detail = "INFO %s fields\n  only redis: %s\n  only test:  %s\n  redis: %s\n  test:  %s" % (
                section, [f for f in rf if f not in tf], [f for f in tf if f not in rf], rf, tf)
            if verbose:
                print(detail)
        report.record(SECTION, "INFO field names", rf == tf, detail)
    rs = [f for f in _info_fields(ref, "everything") if f.startswith("#")]
    ts = [f for f in _info_fields(test, "everything") if f.startswith("#")]
    report.record(SECTION, "INFO field names", rs == ts,
                  None if rs == ts else "INFO everything sections\n  redis: %s\n  test:  %s" % (rs, ts))


def run(ref, test, report, verbose=False):
    known_to_redis = set(names(ref))
    listed = sorted(names(test))
    both = known_to_redis & set(listed)
    only_test = sorted(n for n in listed if n not in known_to_redis)
    only_redis = sorted(n for n in known_to_redis if n not in both and "|" in n and n.split("|")[0] in both)
    print("commandinfo: %d names compared; only in the server under test: %s; subcommands only in redis "
          "(of containers both have): %s" % (len(both), " ".join(only_test) or "-", " ".join(only_redis) or "-"))
    for proto in (2, 3):
        group = "COMMAND INFO resp%d" % proto
        rc, tc = _connect(ref, proto), _connect(test, proto)
        try:
            for name in listed:
                if name not in known_to_redis:
                    continue
                _, rr = rc.command("COMMAND", "INFO", name)
                _, tr = tc.command("COMMAND", "INFO", name)
                rn = (rr[0], [normalize(e, both) for e in rr[1]]) if isinstance(rr[1], list) else rr
                tn = (tr[0], [normalize(e, both) for e in tr[1]]) if isinstance(tr[1], list) else tr
                ok = encode(rn) == encode(tn)
                detail = None
                if not ok:
                    detail = "COMMAND INFO %s\n  redis: %s\n  test:  %s" % (name, format_reply(rn), format_reply(tn))
                    if verbose:
                        print(detail)
                report.record(SECTION, group, ok, detail)
        finally:
            rc.close()
            tc.close()
    check_list_filters(ref, test, both, report, verbose)
    check_info_fields(ref, test, report, verbose)


def main():
    import argparse
    import os
    import sys
    from ..common.report import Report
    from ..common.servers import reference_server, server_under_test
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server-bin", default=os.path.join(".build", "release", "tally-server"))
    ap.add_argument("--server-cmd")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    ref = reference_server()
    test = server_under_test(args.server_bin, args.server_cmd)
    report = Report(verbose_limit=0 if args.verbose else 12)
    try:
        ref.start()
        test.start()
        run(ref, test, report, args.verbose)
    finally:
        ref.cleanup()
        test.cleanup()
    report.print_tables()
    passed, failed = report.totals()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
