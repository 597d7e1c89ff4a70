"""The crash scenarios: each runs workload cycles, crashes the server its own way, restarts and checks."""
import os
import random
import shutil
import time
import traceback

from . import observed
from .model import ALL_ACKED, Model, Window
from .resp import Connection, ErrorReply, ServerGone, info_fields
from .server import ServerProc, StartFailed
from .workload import KeyPlan, Workload, read_state, write_fill

AOF_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
AOF_EVERYSEC = ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
RDB_MANUAL = ["--appendonly", "no", "--save", ""]
RDB_SAVE_POINTS = ["--appendonly", "no", "--save", "3600 1 300 100 60 10000"]


class ScenarioResult:
    def __init__(self, server, scenario):
        self.server, self.scenario = server, scenario
        self.cycles = 0
        self.keys = 0
        self.acked = 0
        self.discarded = 0
        self.fill_checked = 0
        self.lost = 0
        self.phantoms = 0
        self.torn = 0
        self.bad_ttl = 0
        self.error_replies = 0
        self.ops_sent = 0
        self.loss_window = 0.0
        self.loss_window_kind = "lost"   # "lost": window of lost acked writes; "snapshot": age of the RDB
        self.notes = {}
        self.failures = []
        self.aborted = None
        self.seconds = 0.0
        self.data_dir = None

    @property
    def passed(self):
        return not (self.lost or self.phantoms or self.torn or self.bad_ttl or self.error_replies
                    or self.failures or self.aborted)

    def count(self, note, n=1):
        self.notes[note] = self.notes.get(note, 0) + n

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("server", "scenario", "cycles", "keys", "acked", "discarded",
                                             "fill_checked", "lost",
                                             "phantoms", "torn", "bad_ttl", "error_replies", "ops_sent",
                                             "loss_window", "loss_window_kind", "notes", "aborted", "seconds")}
        d["workload_acked"] = self.acked - self.fill_checked
        d["passed"] = self.passed
        d["failures"] = self.failures[:50]
        return d


class Context:
    """Per-run settings shared by all scenarios."""

    def __init__(self, cycles, duration, workers, long, fill, root, verbose, extra_args=()):
        self.cycles, self.duration, self.workers = cycles, duration, workers
        self.extra_args = list(extra_args)
        self.long, self.fill, self.root, self.verbose = long, fill, root, verbose


def _info(conn):
    r = conn.call(b"INFO", b"persistence")
    return info_fields(r) if isinstance(r, bytes) else {}


def _lastsave(conn):
    r = conn.call(b"LASTSAVE")
    if not isinstance(r, int):
        raise RuntimeError("LASTSAVE answered %r" % (r,))
    return r


def completed_save(conn, background, poll=0.005, timeout=120.0):
    """Runs SAVE or BGSAVE and waits until it has certainly completed: no save in progress, last status
    ok and LASTSAVE advanced (we first wait for the next wall-clock second so that it can advance).
    Returns (window, seconds the save took)."""
    before = _lastsave(conn)
    while int(time.time()) <= before:
        time.sleep(0.02)
    ta = time.monotonic()
    reply = conn.call(b"BGSAVE" if background else b"SAVE")
    tb = time.monotonic()
    if isinstance(reply, ErrorReply) or reply is None:
        raise RuntimeError("%s answered %r" % ("BGSAVE" if background else "SAVE", reply))
    deadline = time.monotonic() + timeout
    while background:
        fields = _info(conn)
        if fields.get("rdb_bgsave_in_progress", "0") == "0":
            if fields.get("rdb_last_bgsave_status", "ok") != "ok":
                raise RuntimeError("BGSAVE failed: rdb_last_bgsave_status=%s" % fields["rdb_last_bgsave_status"])
            if _lastsave(conn) > before:
                break
        if time.monotonic() > deadline:
            raise RuntimeError("BGSAVE did not complete within %.0fs" % timeout)
        time.sleep(poll)
    if _lastsave(conn) <= before:
        raise RuntimeError("LASTSAVE did not advance after a successful %s" % ("BGSAVE" if background else "SAVE"))
    return Window(ta, tb, "BGSAVE" if background else "SAVE"), time.monotonic() - ta


def kill_while_loading(srv, rng, result, kills, load_seconds):
    """Starts the server `kills` times and SIGKILLs it at a random point of its start-up (aimed inside
    the previous start's duration; counted as "while LOADING" when PING had answered -LOADING), then
    starts it for real. Returns how long that last start took."""
    for _ in range(kills):
        srv.spawn()
        deadline = time.monotonic() + rng.uniform(0, (load_seconds or 0.3) * 0.9)
        state = "down"
        at_first_loading = rng.random() < 0.5  # else at a random moment, maybe after loading finished
        while True:
            state = srv.probe()
            if time.monotonic() >= deadline or (state == "loading" and (at_first_loading or rng.random() < 0.05)):
                break
            time.sleep(0.001)
        if not srv.alive():
            raise StartFailed("server exited during start-up; log %s:\n%s" % (srv.log_path, srv.log_tail()))
        srv.kill()
        result.count("kills during start-up")
        if state == "loading":
            result.count("kills while LOADING observed")
    srv.start()
    result.notes["last start seconds"] = round(srv.last_start_seconds, 3)
    return srv.last_start_seconds


class Scenario:
    """Base class: options, filler size and how one cycle crashes and restarts the server."""

    name = ""
    options = []
    fill = 0
    proves = ""

    def __init__(self, ctx, rng, result):
        self.ctx, self.rng, self.result = ctx, rng, result

    def fill_size(self):
        return self.fill * (3 if self.ctx.long else 1) * self.ctx.fill // 100

    def run_time(self):
        hi = 3.0 if self.ctx.long else 1.0
        return self.rng.uniform(0.2, hi)

    def after_fill(self, srv):
        pass

    def kill_delay(self, measured):
        """Delay between starting a background job and the kill. `measured` includes the server's lag in
        noticing that its child finished (Redis reaps it from a 100 ms cron), so half of the kills are
        aimed at the first 20 ms, where the job is certainly still running on a fast machine."""
        if self.rng.random() < 0.5:
            return self.rng.uniform(0, min(0.02, measured))
        return self.rng.uniform(0, measured * 1.2)

    def before_cycle(self, srv, model, cycle):
        pass

    def crash(self, srv, cycle):
        """Crashes the running server; returns (windows to try in order, monotonic crash time)."""
        raise NotImplementedError

    def restart(self, srv, cycle):
        srv.start()


class KillScenario(Scenario):
    def crash(self, srv, cycle):
        time.sleep(self.run_time())
        t = time.monotonic()
        srv.kill()
        return [ALL_ACKED], t


class AofAlwaysKill(KillScenario):
    name = "aof-always-kill"
    options = AOF_ALWAYS
    proves = "appendfsync always + SIGKILL: every acknowledged write survives, no phantom, MULTI atomic"


class AofEverysecKill(KillScenario):
    name = "aof-everysec-kill"
    options = AOF_EVERYSEC
    proves = "appendfsync everysec + SIGKILL (process crash, OS intact): nothing acknowledged is lost"


class AofKillDuringRewrite(Scenario):
    name = "aof-kill-during-bgrewriteaof"
    options = AOF_EVERYSEC
    fill = 100_000
    proves = "SIGKILL at a random point of BGREWRITEAOF: old base+incr files or new ones, never a mix"

    rewrite_seconds = None

    def crash(self, srv, cycle):
        time.sleep(self.run_time())
        conn = Connection(srv.port, timeout=30.0)
        try:
            t0 = time.monotonic()
            reply = conn.call(b"BGREWRITEAOF")
            if isinstance(reply, ErrorReply):
                raise RuntimeError("BGREWRITEAOF answered %s" % reply)
            if self.rewrite_seconds is None:
                # First cycle: let one rewrite finish to learn how long it takes, then keep writing and
                # kill later (so this cycle also covers "crash after a completed rewrite").
                while _info(conn).get("aof_rewrite_in_progress", "0") != "0":
                    time.sleep(0.002)
                self.rewrite_seconds = max(0.01, time.monotonic() - t0)
                self.result.count("rewrites completed before the kill")
                time.sleep(self.run_time() / 2)
            else:
                time.sleep(self.kill_delay(self.rewrite_seconds))
                if _info(conn).get("aof_rewrite_in_progress", "0") == "1":
                    self.result.count("kills while INFO said rewrite in progress")
                self.result.count("kills after BGREWRITEAOF")
        finally:
            conn.close()
        t = time.monotonic()
        srv.kill()
        return [ALL_ACKED], t


class RdbKillDuringBgsave(Scenario):
    name = "rdb-kill-during-bgsave"
    options = RDB_MANUAL
    fill = 100_000
    proves = "RDB only: after SIGKILL the state is exactly one completed snapshot (the last acknowledged " \
             "one, or the killed BGSAVE if it had already renamed its file); half the restarts are first killed " \
             "during start-up"

    save_seconds = None

    def __init__(self, ctx, rng, result):
        super().__init__(ctx, rng, result)
        self.result.loss_window_kind = "snapshot"

    def after_fill(self, srv):
        conn = Connection(srv.port, timeout=120.0)
        try:
            completed_save(conn, background=False)
        finally:
            conn.close()

    def restart(self, srv, cycle):
        # Half of the restarts are first killed while loading the RDB.
        self.load_seconds = kill_while_loading(srv, self.rng, self.result, self.rng.randint(0, 1),
                                               getattr(self, "load_seconds", None))

    def crash(self, srv, cycle):
        time.sleep(self.run_time())
        conn = Connection(srv.port, timeout=120.0)
        try:
            background = self.rng.random() < 0.7
            done, took = completed_save(conn, background)
            self.result.count("completed BGSAVE" if background else "completed SAVE")
            if background and self.save_seconds is None:
                self.save_seconds = max(0.01, took)
            time.sleep(self.run_time() / 2)
            ta = time.monotonic()
            reply = conn.call(b"BGSAVE")
            tb = time.monotonic()
            if isinstance(reply, ErrorReply):
                raise RuntimeError("BGSAVE answered %s" % reply)
            pending = Window(ta, tb, "killed BGSAVE", certain=False)
            time.sleep(self.kill_delay(self.save_seconds or 0.05))
            if _info(conn).get("rdb_bgsave_in_progress", "0") == "1":
                self.result.count("kills while INFO said BGSAVE in progress")
            self.result.count("kills after BGSAVE")
        finally:
            conn.close()
        t = time.monotonic()
        srv.kill()
        return [done, pending], t


class KillDuringLoading(Scenario):
    name = "kill-during-loading"
    options = AOF_ALWAYS
    fill = 200_000
    proves = "SIGKILL while the server loads a large AOF, then restart: loading is read-only, nothing lost"

    load_seconds = None

    def before_cycle(self, srv, model, cycle):
        # Grow the AOF each cycle so the next start has more to replay.
        n = self.fill_size()
        if n:
            write_fill(srv.port, model.fill, n // 2, lambda i: 1)

    def crash(self, srv, cycle):
        time.sleep(self.run_time())
        t = time.monotonic()
        srv.kill()
        return [ALL_ACKED], t

    def restart(self, srv, cycle):
        self.load_seconds = kill_while_loading(srv, self.rng, self.result, self.rng.randint(1, 2),
                                               self.load_seconds)


class SigtermScenario(Scenario):
    def crash(self, srv, cycle):
        time.sleep(self.run_time())
        t = time.monotonic()
        status = srv.terminate()
        self.result.count("exit status %s" % status)
        return [ALL_ACKED], t


class SigtermAof(SigtermScenario):
    name = "sigterm-aof"
    options = AOF_EVERYSEC
    proves = "SIGTERM with AOF (everysec, then always, alternating): nothing acknowledged is lost"

    def restart(self, srv, cycle):
        # Alternate the fsync policy across restarts of the same AOF, which a real deployment may do too.
        srv.options = (AOF_ALWAYS if cycle % 2 == 0 else AOF_EVERYSEC) + self.ctx.extra_args
        self.result.count("restarts with appendfsync %s" % ("always" if cycle % 2 == 0 else "everysec"))
        srv.start()


class SigtermRdb(SigtermScenario):
    name = "sigterm-rdb"
    options = RDB_SAVE_POINTS
    proves = "SIGTERM with RDB save points and no AOF: the shutdown save keeps everything acknowledged"


ALL = [AofAlwaysKill, AofEverysecKill, AofKillDuringRewrite, RdbKillDuringBgsave, KillDuringLoading,
       SigtermAof, SigtermRdb]
BY_NAME = {s.name: s for s in ALL}


def run_scenario(cls, label, argv, ctx, seed, log):
    """Runs one scenario against one server; returns a ScenarioResult (never raises for server faults)."""
    result = ScenarioResult(label, cls.name)
    rng = random.Random("%d:%s" % (seed, cls.name))
    scenario = cls(ctx, rng, result)
    data_dir = os.path.join(ctx.root, label, cls.name, "data")
    shutil.rmtree(os.path.dirname(data_dir), ignore_errors=True)
    os.makedirs(data_dir)
    result.data_dir = os.path.dirname(data_dir)
    srv = ServerProc(label, argv, data_dir, cls.options + ctx.extra_args)
    plan = KeyPlan(ctx.workers)
    observed.prepare(plan)
    model = Model(plan)
    started = time.monotonic()
    workload = None
    try:
        srv.start()
        _preflight(srv, result)
        _check(result, model, [], ALL_ACKED, srv, plan, None, "initial empty state")
        n = scenario.fill_size()
        if n:
            t0 = time.monotonic()
            write_fill(srv.port, model.fill, n, lambda i: rng.randint(-10_000, 10_000) or 1)
            log("  %s: wrote %d filler keys in %.1fs" % (cls.name, n, time.monotonic() - t0))
        scenario.after_fill(srv)
        cycle = 0
        while cycle < ctx.cycles or (ctx.duration and time.monotonic() - started < ctx.duration):
            scenario.before_cycle(srv, model, cycle)
            workload = Workload(srv.port, plan, rng)
            workload.start()
            observer = observed.ObservedCounter(srv.port) if observed.applies(list(srv.options)) else None
            if observer:
                observer.start()
            windows, crash_time = scenario.crash(srv, cycle)
            if srv.alive():
                srv.kill()
            if srv.unexpected_exits:
                result.failures.append("cycle %d: the server exited on its own (status %s) before it was "
                                       "signalled; log tail:\n%s" % (cycle, srv.unexpected_exits, srv.log_tail(10)))
                srv.unexpected_exits = []
            workload.join()
            if observer:
                observer.stop()
                observer.join()
            result.ops_sent += workload.op_count()
            errs = workload.errors()
            if errs:
                result.error_replies += len(errs)
                for e in errs[:5]:
                    result.failures.append("cycle %d: unexpected reply: %s" % (cycle, e))
            logs = workload.logs()
            workload = None
            scenario.restart(srv, cycle)
            lost_observed = observer.check(srv.port) if observer else None
            if lost_observed:
                result.failures.append("cycle %d: %s" % (cycle, lost_observed))
            _check_windows(result, model, logs, windows, srv, plan, crash_time, "cycle %d" % cycle)
            cycle += 1
            result.cycles = cycle
            if ctx.verbose:
                log("  %s cycle %d: %d ops, %s" % (cls.name, cycle, sum(len(x) for x in logs),
                                                 "ok" if result.passed else "FAIL"))
            if not result.passed and not ctx.long:
                break
    except (StartFailed, RuntimeError, ServerGone, OSError) as e:
        result.aborted = "%s: %s" % (type(e).__name__, e)
    except Exception as e:  # noqa: BLE001 - a malformed reply must not stop the other scenarios
        result.aborted = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    finally:
        if workload is not None:
            workload.stop_event.set()
        srv.kill()
        if workload is not None:
            try:
                workload.join(10)
            except RuntimeError:
                pass
    result.seconds = time.monotonic() - started
    if result.passed:
        shutil.rmtree(result.data_dir, ignore_errors=True)
    return result


def _preflight(srv, result):
    """A server that accepts --appendonly yes but does not log would fail every check with a wall of
    lost writes; say plainly what INFO reports instead."""
    opts = srv.options
    wanted = None
    for i, o in enumerate(opts[:-1]):
        if o == "--appendonly":
            wanted = "1" if opts[i + 1] == "yes" else "0"
    conn = Connection(srv.port, timeout=30.0)
    try:
        enabled = _info(conn).get("aof_enabled")
    finally:
        conn.close()
    if wanted is not None and enabled is not None and enabled != wanted:
        result.failures.append("server started with --appendonly %s but INFO persistence says aof_enabled:%s"
                               % ("yes" if wanted == "1" else "no", enabled))


def _check_windows(result, model, logs, windows, srv, plan, crash_time, what):
    observed = read_state(srv.port, plan, model.fill.keys())
    first = None
    for w in windows:
        res = model.check(logs, w, *observed, crash_time)
        if res.ok:
            if not w.certain:
                result.count("recovered the killed BGSAVE (it had completed)")
            _accumulate(result, model, res, w, crash_time)
            return
        if first is None:
            first = (res, w)
    res, w = first
    result.failures.extend("%s (%s): %s" % (what, w.label, f) for f in res.failures if f)
    _accumulate(result, model, res, w, crash_time)


def _check(result, model, logs, window, srv, plan, crash_time, what):
    _check_windows(result, model, logs, [window], srv, plan, crash_time, what)


def _accumulate(result, model, res, window, crash_time):
    result.keys += res.keys
    result.acked += res.acked
    result.discarded += res.discarded
    result.fill_checked += res.fill_checked
    result.lost += res.lost
    result.phantoms += res.phantoms
    result.torn += res.torn
    result.bad_ttl += res.bad_ttl
    if res.lost_after_signal:
        result.count("lost writes acknowledged after the signal", res.lost_after_signal)
    result.error_replies += res.bad_replies
    if result.loss_window_kind == "snapshot" and crash_time is not None and window.ta != float("inf"):
        result.loss_window = max(result.loss_window, crash_time - window.ta)
    else:
        result.loss_window = max(result.loss_window, res.loss_window)
    model.adopt(res)
