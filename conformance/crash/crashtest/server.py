"""Starts, kills and restarts one server process on a fixed port and data directory."""
import os
import signal
import socket
import subprocess
import time

from .resp import Connection, ErrorReply, ServerGone


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartFailed(Exception):
    """The server exited or never answered PING during start-up."""


class ServerProc:
    """A RESP server started as `argv + --port P --dir D + options`, in its own process group so that a
    SIGKILL also takes down any child it forked (a BGSAVE / BGREWRITEAOF child), as a machine-level crash
    of the process would. The port and directory stay the same across restarts."""

    def __init__(self, label, argv, data_dir, options):
        self.label = label
        self.argv = list(argv)
        self.dir = data_dir
        self.options = list(options)
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir.rstrip("/")), os.path.basename(data_dir) + ".log")
        self.starts = 0
        self.last_start_seconds = None
        self.signalled = False
        self.unexpected_exits = []  # exit statuses of runs that ended before we signalled them

    def command_line(self):
        return self.argv + ["--port", str(self.port), "--dir", self.dir] + self.options

    def spawn(self):
        """Starts the process without waiting for it to be ready."""
        os.makedirs(self.dir, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(("\n==== start %d: %s\n" % (self.starts, " ".join(self.command_line()))).encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(self.command_line(), stdout=log, stderr=subprocess.STDOUT,
                                             cwd=self.dir, start_new_session=True)
            except OSError as e:
                raise StartFailed("cannot start %s: %s" % (" ".join(self.command_line()), e)) from e
        self.starts += 1
        self.spawned_at = time.monotonic()
        self.signalled = False

    def probe(self):
        """One PING: returns 'ready', 'loading', or 'down'."""
        try:
            c = Connection(self.port, timeout=2.0)
        except OSError:
            return "down"
        try:
            r = c.call("PING")
        except (ServerGone, OSError, ValueError):
            return "down"
        finally:
            c.close()
        if r == b"PONG":
            return "ready"
        if isinstance(r, ErrorReply) and r.text.startswith(b"LOADING"):
            return "loading"
        return "down"

    def start(self, timeout=120.0):
        """Starts the server and waits until PING answers PONG (i.e. loading is over)."""
        self.spawn()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        saw_loading = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartFailed("%s exited with status %s during start-up; log %s:\n%s"
                                  % (self.label, self.proc.returncode, self.log_path, self.log_tail()))
            state = self.probe()
            if state == "ready":
                self.last_start_seconds = time.monotonic() - self.spawned_at
                return saw_loading
            saw_loading = saw_loading or state == "loading"
            time.sleep(0.005)
        self.kill()
        raise StartFailed("%s did not answer PING within %.0fs; log %s:\n%s"
                          % (self.label, timeout, self.log_path, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL to the whole process group (server and any forked child), then reap."""
        if self.proc is None:
            return
        self.note_unexpected_exit()
        self.signalled = True
        if self.proc.poll() is None:
            # Only while our leader is unreaped: its pid (= the group id) cannot belong to anyone else.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.wait_group_gone()

    def wait_group_gone(self, timeout=10.0):
        # A forked child is not our child, so it cannot be reaped here; wait until the group is empty so
        # that the next start does not race an orphan still writing into the same directory.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)

    def terminate(self, timeout=60.0):
        """SIGTERM to the server process only; returns its exit status, or None if it had to be killed."""
        if not self.alive():
            self.note_unexpected_exit()
            self.signalled = True
            return self.proc.returncode if self.proc else None
        self.signalled = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.wait_group_gone()
        return status

    def note_unexpected_exit(self):
        if not self.signalled and self.proc.poll() is not None:
            self.unexpected_exits.append(self.proc.returncode)

    def log_tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""
