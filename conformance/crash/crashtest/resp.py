"""Minimal blocking RESP2 client over a raw TCP socket, with pipelining, for the crash tester."""
import socket


class ServerGone(Exception):
    """The connection closed or failed before a whole reply arrived (the server died or shut down)."""


class ErrorReply(Exception):
    """A `-ERR ...` reply where a value was expected; `text` holds the bytes after the dash."""

    def __init__(self, text):
        super().__init__(text.decode(errors="replace"))
        self.text = text


def encode(*args):
    """Encodes one command (arguments are bytes, str or int) as a RESP multi-bulk request."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = b"%d" % a
        elif isinstance(a, str):
            a = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class Connection:
    """One client connection. Replies come back as Python values; error replies as ErrorReply objects
    (returned, not raised, so a pipeline can carry on past them)."""

    def __init__(self, port, timeout=30.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A C-level buffered reader: readline() is far faster than parsing byte by byte in Python.
        self.reader = self.sock.makefile("rb", buffering=1 << 16)

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ServerGone(str(e)) from e

    def read_reply(self):
        try:
            line = self.reader.readline()
        except OSError as e:
            raise ServerGone(str(e)) from e
        if not line.endswith(b"\r\n"):
            raise ServerGone("connection closed mid-reply" if line else "connection closed")
        kind, body = line[:1], line[1:-2]
        if kind == b":":
            return int(body)
        if kind == b"+":
            return body
        if kind == b"-":
            return ErrorReply(body)
        if kind == b"$":
            n = int(body)
            if n < 0:
                return None
            try:
                data = self.reader.read(n + 2)
            except OSError as e:
                raise ServerGone(str(e)) from e
            if len(data) != n + 2:
                raise ServerGone("connection closed mid-bulk")
            return data[:-2]
        if kind == b"*":
            n = int(body)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        if kind == b"_":
            return None
        raise ServerGone("unexpected reply type %r" % line[:40])

    def call(self, *args):
        """Sends one command and returns its reply (ErrorReply objects are returned, not raised)."""
        self.send(encode(*args))
        return self.read_reply()

    def call_ok(self, *args):
        """Like call, but raises ErrorReply on an error reply."""
        r = self.call(*args)
        if isinstance(r, ErrorReply):
            raise r
        return r

    def pipeline(self, commands, batch=5000):
        """Sends encoded commands in batches and returns all replies in order."""
        out = []
        for i in range(0, len(commands), batch):
            chunk = commands[i:i + batch]
            self.send(b"".join(chunk))
            out.extend(self.read_reply() for _ in chunk)
        return out


def info_fields(text):
    """Parses an INFO reply into a dict of str -> str."""
    fields = {}
    for line in text.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields
