"""Reply comparison: exact bytes by default, or a loose mode for non-deterministic replies."""
from ..common.resp import is_error

# Modes: None/"exact" (raw bytes), "ttl" (integers within +-1, negatives exact), "pttl" (within +-1000),
# "type" (same RESP type byte), "any" (both succeed or both fail), "sorted" (aggregates as sorted
# multisets; maps as sorted pairs), "ignore:NAME" (maps/pair arrays: the value after key NAME only has
# to have the same type), "scan" (the runner iterates the cursor to 0 and compares the union of all
# pages as a set), ("exec", [modes]) (per-element modes for an EXEC array reply).
MODES = ("exact", "ttl", "pttl", "type", "any", "sorted", "scan")


def _canon(reply):
    """A hashable canonical form of a parsed reply (for sorting and equality)."""
    kind, payload = reply
    if isinstance(payload, list):
        return (kind, tuple(_canon(x) for x in payload))
    return (kind, payload if payload is not None else b"\x00<null>")


def _tolerant(a, b, tol):
    ka, pa = a
    kb, pb = b
    if ka != kb:
        return False
    if ka == ":":
        if pa < 0 or pb < 0:
            return pa == pb
        return abs(pa - pb) <= tol
    if isinstance(pa, list) and isinstance(pb, list):
        return len(pa) == len(pb) and all(_tolerant(x, y, tol) for x, y in zip(pa, pb))
    return pa == pb


def _sorted_form(reply):
    kind, payload = reply
    if not isinstance(payload, list):
        return _canon(reply)
    if kind in "%":
        pairs = [(_canon(payload[i]), _canon(payload[i + 1])) for i in range(0, len(payload), 2)]
        return (kind, tuple(sorted(pairs, key=repr)))
    return (kind, tuple(sorted((_canon(x) for x in payload), key=repr)))


def _collated_form(reply):
    """SORT ALPHA's order as strcoll defines it: each element's text up to its first NUL byte, in
    order. Elements equal up to there tie, and ties keep the input's order, which for a set is its
    hash table's order (a server's own)."""
    kind, payload = reply
    if not isinstance(payload, list):
        return _canon(reply)
    return (kind, tuple(x[1].split(b"\x00")[0] if isinstance(x[1], bytes) else _canon(x) for x in payload))


def _ignore_field(a, b, name):
    ka, pa = a
    kb, pb = b
    if ka != kb or not isinstance(pa, list) or not isinstance(pb, list) or len(pa) != len(pb):
        return _canon(a) == _canon(b)
    for i in range(0, len(pa) - 1, 2):
        if _canon(pa[i]) != _canon(pb[i]):
            return False
        if pa[i][1] == name:
            if pa[i + 1][0] != pb[i + 1][0]:
                return False
        elif _canon(pa[i + 1]) != _canon(pb[i + 1]):
            return False
    return True


def same(mode, raw_a, a, raw_b, b):
    """True when the two replies agree under `mode`."""
    if mode in (None, "exact"):
        return raw_a == raw_b
    if isinstance(mode, tuple) and mode[0] == "exec":
        modes = mode[1]
        if a[0] == b[0] and isinstance(a[1], list) and isinstance(b[1], list) and len(a[1]) == len(b[1]) \
                and len(a[1]) == len(modes):
            return all(_same_parsed(m, x, y) for m, x, y in zip(modes, a[1], b[1]))
        return raw_a == raw_b
    return _same_parsed(mode, a, b)


def _same_parsed(mode, a, b):
    if mode in (None, "exact"):
        return _canon(a) == _canon(b)
    if mode == "ttl":
        return _tolerant(a, b, 1)
    if mode == "pttl":
        return _tolerant(a, b, 1000)
    if mode == "type":
        return a[0] == b[0]
    if mode == "any":
        return is_error(a) == is_error(b)
    if mode == "sorted":
        return _sorted_form(a) == _sorted_form(b)
    if mode == "collated":
        return _collated_form(a) == _collated_form(b) and _sorted_form(a) == _sorted_form(b)
    if isinstance(mode, str) and mode.startswith("ignore:"):
        return _ignore_field(a, b, mode[len("ignore:"):].encode())
    raise ValueError("unknown comparison mode %r" % (mode,))


def valid_mode(mode):
    return mode in MODES or (isinstance(mode, str) and mode.startswith("ignore:") and len(mode) > 7)
