"""RESP2/RESP3 encoding, incremental reply parsing and a raw-socket connection that keeps reply bytes."""
import select
import socket
import time


class Incomplete(Exception):
    """The buffer does not yet hold a whole reply."""


class ProtocolViolation(Exception):
    """The server sent bytes that are not a valid RESP reply."""


class ConnectionClosed(Exception):
    """The peer closed the connection before a whole reply arrived."""


class ReplyTimeout(Exception):
    """No whole reply arrived in time."""


def encode_command(args):
    """Encodes argv (a list of bytes) as a RESP multi-bulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        parts.append(b"$%d\r\n" % len(a))
        parts.append(a)
        parts.append(b"\r\n")
    return b"".join(parts)


# A parsed reply is (kind, payload): kind is the RESP type byte as a 1-char str.
# Simple/error/bulk/verbatim/big-number payloads are bytes; integers are int; aggregates are lists of
# replies (maps and attributes are flattened key, value, key, value...); nulls carry None.
_LINE_KINDS = "+-:,#(_"
_BLOB_KINDS = "$!="
_AGG_KINDS = "*~>%|"


def _read_line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    return buf[pos:end], end + 2


def parse_reply(buf, pos=0):
    """Parses one reply starting at pos; returns (reply, next_pos) or raises Incomplete/ProtocolViolation."""
    if pos >= len(buf):
        raise Incomplete()
    kind = chr(buf[pos])
    line, nxt = _read_line(buf, pos + 1)
    if kind in _LINE_KINDS:
        if kind == ":":
            try:
                return (kind, int(line)), nxt
            except ValueError:
                raise ProtocolViolation("bad integer %r" % line)
        if kind == "_":
            return (kind, None), nxt
        return (kind, bytes(line)), nxt
    if kind in _BLOB_KINDS:
        try:
            n = int(line)
        except ValueError:
            raise ProtocolViolation("bad length %r" % line)
        if n < 0:
            return (kind, None), nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete()
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise ProtocolViolation("bulk not terminated by CRLF")
        return (kind, bytes(buf[nxt:nxt + n])), nxt + n + 2
    if kind in _AGG_KINDS:
        try:
            n = int(line)
        except ValueError:
            raise ProtocolViolation("bad count %r" % line)
        if n < 0:
            return (kind, None), nxt
        if kind in "%|":
            n *= 2
        items = []
        p = nxt
        for _ in range(n):
            item, p = parse_reply(buf, p)
            items.append(item)
        if kind == "|":
            # An attribute precedes the real reply; keep the reply, attribute bytes stay in raw.
            inner, p = parse_reply(buf, p)
            return inner, p
        return (kind, items), p
    raise ProtocolViolation("unknown reply type byte %r" % kind)


def is_error(reply):
    return reply is not None and reply[0] in "-!"


def format_reply(reply):
    """Renders a parsed reply compactly for failure reports."""
    if reply is None:
        return "<none>"
    kind, payload = reply
    if payload is None:
        return kind + "null"
    if isinstance(payload, list):
        return kind + "[" + ", ".join(format_reply(x) for x in payload) + "]"
    if isinstance(payload, bytes):
        return kind + repr(payload)[1:]
    return kind + str(payload)


class Connection:
    """A blocking TCP connection that collects replies as raw bytes plus their parse."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.timeout = timeout
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionClosed("send failed: %s" % e)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout()
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise ReplyTimeout()
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        except OSError as e:
            raise ConnectionClosed(str(e))
        if not chunk:
            self.closed = True
            raise ConnectionClosed("closed by peer")
        self.buf += chunk

    def read_reply(self, timeout=None):
        """Returns (raw_bytes, parsed) of the next reply."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                reply, end = parse_reply(self.buf, 0)
                raw = bytes(self.buf[:end])
                del self.buf[:end]
                return raw, reply
            except Incomplete:
                self._fill(deadline)

    def read_replies(self, count, timeout=None):
        """Reads count replies (pipelined); the deadline covers all of them."""
        deadline = time.monotonic() + (timeout or max(self.timeout, count * 0.001 + 5))
        out = []
        pos = 0
        while len(out) < count:
            try:
                reply, end = parse_reply(self.buf, pos)
                out.append((bytes(self.buf[pos:end]), reply))
                pos = end
            except Incomplete:
                del self.buf[:pos]
                pos = 0
                self._fill(deadline)
        del self.buf[:pos]
        return out

    def command(self, *args, timeout=None):
        self.send(encode_command([a if isinstance(a, bytes) else str(a).encode() for a in args]))
        return self.read_reply(timeout)

    def read_until_close(self, idle=1.0, limit=5.0):
        """Reads everything until the peer closes or stays silent for `idle` s; returns (bytes, closed)."""
        data = bytes(self.buf)
        self.buf.clear()
        end = time.monotonic() + limit
        while time.monotonic() < end:
            ready, _, _ = select.select([self.sock], [], [], idle)
            if not ready:
                return data, False
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return data, True
            data += chunk
        return data, False
