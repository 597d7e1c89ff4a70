"""Observed writes: readers on their own connections record the highest value they saw of a counter
that one writer only increments; after the crash and restart the counter must hold at least every
value any reader saw. A reply may not show a write that a SIGKILL can take back (with the AOF on, the
record must reach the kernel before any client sees the value, and be fsynced under `always`)."""
import threading

from .resp import Connection, ServerGone

KEY = b"ct:observed"


class ObservedCounter:
    """One INCR writer and `readers` GET readers on KEY, until the server goes away."""

    def __init__(self, port, readers=3):
        self.port = port
        self.lock = threading.Lock()
        self.highest_seen = 0
        self.reads = 0
        self.threads = [threading.Thread(target=self._write, name="observed-writer", daemon=True)]
        self.threads += [threading.Thread(target=self._read, name="observed-reader-%d" % i, daemon=True)
                         for i in range(readers)]
        self.stop_event = threading.Event()

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_event.set()

    def join(self, timeout=30.0):
        for t in self.threads:
            t.join(timeout)

    def _loop(self, command, on_reply):
        try:
            conn = Connection(self.port, timeout=30.0)
        except OSError:
            return
        try:
            while not self.stop_event.is_set():
                on_reply(conn.call(*command))
        except (ServerGone, OSError):
            pass
        finally:
            conn.close()

    def _write(self):
        self._loop((b"INCR", KEY), lambda reply: None)

    def _read(self):
        def record(reply):
            if isinstance(reply, bytes) and reply.isdigit():
                with self.lock:
                    self.highest_seen = max(self.highest_seen, int(reply))
                    self.reads += 1
        self._loop((b"GET", KEY), record)

    def check(self, port):
        """Returns a failure text, or None if the restarted server holds at least what was seen."""
        conn = Connection(port, timeout=30.0)
        try:
            reply = conn.call(b"GET", KEY)
        finally:
            conn.close()
        stored = int(reply) if isinstance(reply, bytes) and reply.isdigit() else 0
        if stored < self.highest_seen:
            return ("observed write lost: readers saw %s = %d before the crash, the restarted server holds %d"
                    % (KEY.decode(), self.highest_seen, stored))
        return None


def applies(options):
    """The check holds with the AOF on (the last --appendonly option wins)."""
    value = None
    for i, word in enumerate(options[:-1]):
        if word == "--appendonly":
            value = options[i + 1]
    return value == "yes"


def prepare(plan):
    """Makes the checker's KEYS scan count KEY as known, not as a phantom."""
    plan.keys.add(KEY)

