"""Runs every client workload against redis-server (baseline) and the server under test."""
import os
import shutil
import subprocess
import tempfile

from ..common.resp import Connection, ConnectionClosed, ProtocolViolation, ReplyTimeout
from . import cli_tools

HERE = os.path.dirname(os.path.abspath(__file__))


def _external(argv, env=None, timeout=90):
    """Runs a workload program; returns checks parsed from its `ok NAME` / `FAIL NAME detail` lines."""
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return [("timeout", False, "workload did not finish in %ds" % timeout)]
    checks = []
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith("ok "):
            checks.append((line[3:].strip(), True, ""))
        elif line.startswith("FAIL "):
            name, _, detail = line[5:].partition(" ")
            checks.append((name, False, detail))
    if p.returncode != 0 and all(ok for _, ok, _ in checks):
        checks.append(("exit-status", False, "exit %d; stderr: %s" % (p.returncode,
                                                                    p.stderr.decode(errors="replace")[-500:])))
    if not checks:
        checks.append(("no-output", False, p.stderr.decode(errors="replace")[-500:]))
    return checks


def _unresponsive(srv):
    """Why the server cannot take a workload (dead or not answering PING in 5 s), or None."""
    srv.restart_if_dead()
    try:
        c = Connection(srv.port, timeout=5.0)
        try:
            raw, _ = c.command("PING")
        finally:
            c.close()
        return None if raw == b"+PONG\r\n" else "PING answered %r" % raw[:60]
    except (OSError, ReplyTimeout, ConnectionClosed, ProtocolViolation) as e:
        return "PING failed: %s %s" % (type(e).__name__, e)


def _build_hiredis(tmp):
    exe = os.path.join(tmp, "hiredis_workload")
    p = subprocess.run(["gcc", "-O1", "-Wall", "-o", exe, os.path.join(HERE, "hiredis_workload.c"), "-lhiredis"],
                       capture_output=True)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace")[-500:]
    return exe, ""


def _has_module(name):
    """True when python3 can import `name` (the scripting workload needs the PyPI `limits`)."""
    return subprocess.run(["python3", "-c", "import " + name], capture_output=True).returncode == 0


def run(ref, test, report, seed, long=False):
    tmp = tempfile.mkdtemp(prefix="tally-conf-clients-")
    try:
        hiredis_exe, hiredis_err = _build_hiredis(tmp)
        node_env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        workloads = [
            ("redis-cli", lambda s: cli_tools.redis_cli(s.port, ref.port), shutil.which("redis-cli")),
            ("redis-benchmark", lambda s: cli_tools.redis_benchmark(s.port, ref.port, long),
             shutil.which("redis-benchmark")),
            ("redis-py", lambda s: _external(["python3", os.path.join(HERE, "redispy_workload.py"), str(s.port)]),
             True),
            ("scripts-py", lambda s: _external(["python3", os.path.join(HERE, "scripting_workload.py"),
                                                str(s.port)]), _has_module("limits")),
            ("node-redis", lambda s: _external(["node", os.path.join(HERE, "node_workload.js"), str(s.port)],
                                               env=node_env), shutil.which("node")),
            ("ruby-redis", lambda s: _external(["ruby", os.path.join(HERE, "ruby_workload.rb"), str(s.port)]),
             shutil.which("ruby")),
            ("hiredis", lambda s: (_external([hiredis_exe, str(s.port)]) if hiredis_exe
                                   else [("build", False, hiredis_err)]), True),
        ]
        for name, fn, available in workloads:
            for srv in (ref, test):
                group = "%s/%s" % (name, srv.name)
                problem = _unresponsive(srv)
                if problem:
                    report.record("clients", group, False, "%s not run: %s" % (name, problem))
                    continue
                if not available:
                    report.record("clients", group, False, "%s is not installed" % name)
                    continue
                try:
                    checks = fn(srv)
                except Exception as e:  # noqa: BLE001 - a crashed workload is a failed check, not a crash
                    checks = [("exception", False, "%s: %s" % (type(e).__name__, e))]
                for check, ok, detail in checks:
                    report.record("clients", group, ok, "%s: %s %s" % (group, check, detail))
                if srv.restart_if_dead():
                    report.record("clients", group, False, "%s crashed during %s; log:\n%s"
                                  % (srv.name, name, srv.log_tail()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
