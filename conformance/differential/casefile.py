"""Parses case files: redis-cli quoted commands, `@N` connection and `~mode` prefixes, `!` directives."""
from .compare import valid_mode


class CaseSyntaxError(Exception):
    pass


_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "b": b"\b", "a": b"\a"}
_HEX = "0123456789abcdefABCDEF"


def split_args(line):
    """Splits a line like redis-cli does (sdssplitargs): returns a list of bytes, raises on bad quoting."""
    out = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    raise CaseSyntaxError("unterminated double quote")
                c = line[i]
                if c == "\\" and i + 3 < n and line[i + 1] == "x" and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == "\\" and i + 1 < n:
                    i += 1
                    cur += _ESCAPES.get(line[i], line[i].encode())
                elif c == '"':
                    if i + 1 < n and not line[i + 1].isspace():
                        raise CaseSyntaxError("closing quote must be followed by a space")
                    in_dq = False
                    i += 1
                    break
                else:
                    cur += c.encode()
                i += 1
            elif in_sq:
                if i >= n:
                    raise CaseSyntaxError("unterminated single quote")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    cur += b"'"
                    i += 1
                elif c == "'":
                    if i + 1 < n and not line[i + 1].isspace():
                        raise CaseSyntaxError("closing quote must be followed by a space")
                    in_sq = False
                    i += 1
                    break
                else:
                    cur += c.encode()
                i += 1
            else:
                if i >= n or line[i].isspace():
                    break
                c = line[i]
                if c == '"' and not cur:
                    in_dq = True
                elif c == "'" and not cur:
                    in_sq = True
                else:
                    cur += c.encode()
                i += 1
        out.append(bytes(cur))


class Step:
    """One line of a case file: a command (args) or a directive, on connection `conn`."""

    def __init__(self, lineno, text, conn, mode, args=None, directive=None, dargs=None):
        self.lineno = lineno
        self.text = text
        self.conn = conn
        self.mode = mode
        self.args = args
        self.directive = directive
        self.dargs = dargs


DIRECTIVES = {"sleep", "raw", "rawrep", "closed", "reconnect", "resp2", "resp3", "read"}


def parse_line(lineno, text):
    rest = text.strip()
    conn = 1
    mode = None
    if rest.startswith("@"):
        head, _, rest = rest.partition(" ")
        try:
            conn = int(head[1:])
        except ValueError:
            raise CaseSyntaxError("bad connection prefix %r" % head)
        rest = rest.strip()
    if rest.startswith("~"):
        head, _, rest = rest.partition(" ")
        mode = head[1:]
        if not valid_mode(mode):
            raise CaseSyntaxError("unknown comparison mode %r" % mode)
        rest = rest.strip()
    if rest.startswith("!"):
        head, _, tail = rest.partition(" ")
        name = head[1:]
        if name not in DIRECTIVES:
            raise CaseSyntaxError("unknown directive %r" % name)
        return Step(lineno, text, conn, mode, directive=name, dargs=split_args(tail))
    args = split_args(rest)
    if not args:
        raise CaseSyntaxError("empty command")
    return Step(lineno, text, conn, mode, args=args)


def parse_file(path):
    """Returns a list of groups; each group is a list of Steps. Blank lines separate groups."""
    groups = []
    current = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            stripped = line.strip()
            if not stripped:
                if current:
                    groups.append(current)
                    current = []
                continue
            if stripped.startswith("#"):
                continue
            try:
                current.append(parse_line(lineno, line.rstrip("\n")))
            except CaseSyntaxError as e:
                raise CaseSyntaxError("%s:%d: %s" % (path, lineno, e))
    if current:
        groups.append(current)
    return groups
