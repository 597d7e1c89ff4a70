"""Starts and stops the reference redis-server and the server under test on free loopback ports."""
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

from .resp import Connection


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process with its own temp dir; `argv` is the command line prefix (binary + fixed args)."""

    def __init__(self, name, argv, extra_args=None):
        self.name = name
        self.argv = list(argv)
        self.extra_args = list(extra_args or [])
        self.port = None
        self.dir = None
        self.proc = None
        self.log_path = None
        self.timeouts = 0  # replies that never came: after a few, callers stop sending to a hung server

    def start(self, timeout=20.0):
        if self.dir:  # a restart after a crash: the old dir (and its log) is not needed any more
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = tempfile.mkdtemp(prefix="tally-conf-%s-" % self.name)
        self.log_path = os.path.join(self.dir, "server.log")
        last_error = None
        for _ in range(3):  # a free port can be taken between probing and binding: retry on a new one
            self.port = free_port()
            args = self.argv + ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                                "--save", "", "--appendonly", "no", "--daemonize", "no"] + self.extra_args
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
            except OSError as e:
                raise SystemExit("cannot start %s (%s): %s" % (self.name, " ".join(args), e))
            finally:
                log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_error = "exited with status %s" % self.proc.returncode
                    break
                try:
                    c = Connection(self.port, timeout=2.0)
                    raw, _ = c.command("PING")
                    c.close()
                    if raw == b"+PONG\r\n":
                        return self
                    last_error = "PING answered %r" % raw
                except OSError as e:
                    last_error = str(e)
                except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                    last_error = str(e)
                time.sleep(0.05)
            self.stop()
        raise SystemExit("%s did not come up: %s (log: %s)\n%s" % (self.name, last_error, self.log_path,
                                                                   self.log_tail()))

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self):
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart_if_dead(self):
        """Restarts a crashed server so later sections still run; returns True if it had died."""
        if self.alive():
            return False
        self.start()
        return True


def reference_server():
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("conformance: redis-server not found in PATH (install Debian's redis-server 7.0.15)")
    return ServerProcess("redis", [exe])


def server_under_test(server_bin=None, server_cmd=None):
    if server_cmd:
        argv = shlex.split(server_cmd)
        exe = shutil.which(argv[0]) or argv[0]
        if not os.path.exists(exe):
            raise SystemExit("conformance: server command not found: %s" % argv[0])
        return ServerProcess("test", [exe] + argv[1:])
    if not os.path.exists(server_bin):
        raise SystemExit("conformance: server binary not found: %s (build it with "
                         "`swift build -c release --product tally-server`, or pass --server-bin / --server-cmd)"
                         % server_bin)
    return ServerProcess("test", [os.path.abspath(server_bin)])
