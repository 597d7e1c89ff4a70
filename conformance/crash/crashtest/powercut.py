"""Power cuts of the real server binary on a LazyFS-like FUSE filesystem (crashtest/lazyfs.py).

Each scenario runs the crash suite's workload and checker (workload.py, model.py), but the server's data
directory is a lazyfs mount, and every "kill" is a power cut: SIGKILL of the server's process group, then
the filesystem drops what was not made durable (un-fsynced file data, directory entries whose directory was
not fsynced), optionally keeping a torn prefix of the last writes or a zero-filled grown tail, and is
mounted again over what survived. See conformance/crash/README.md, "Power cuts".
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from . import observed
from . import scenarios as crash
from .model import ALL_ACKED, Model, Window
from .server import ServerProc, StartFailed
from .resp import ServerGone
from .workload import KeyPlan, Workload, read_state, write_fill

HERE = os.path.dirname(os.path.abspath(__file__))
LAZYFS = os.path.join(HERE, "lazyfs.py")

# Tally scenarios that are known to fail until another change lands, with the reason. A scenario listed
# here does not fail the run when it fails (it is reported as XFAIL); when it passes it is reported as
# XPASS so that the entry can be removed. redis-server never fails the run: its figures are the point.
# Empty since directory fsyncs (mkdir appendonlydir, AOF file creation and renames) and the torn/zero
# tail handling of the checksummed AOF landed: every scenario must pass for Tally.
EXPECTED_FAILURES = {}


def fuse_unavailable():
    """None when a lazyfs mount works here, else why not (a short, exact reason)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    probe = subprocess.run([sys.executable, "-c", "import fuse"], capture_output=True, text=True)
    if probe.returncode != 0:
        lines = (probe.stderr.strip() or probe.stdout.strip()).splitlines()
        return "fusepy cannot load libfuse.so.2: %s" % (lines[-1] if lines else "import fuse failed")
    base = tempfile.mkdtemp(prefix="lazyfs-probe-")
    try:
        m = LazyMount(base, os.path.join(base, "mnt"))
        try:
            m.mount(timeout=10.0)
        except RuntimeError as e:
            return str(e)
        m.cut("sync")
        return None
    finally:
        shutil.rmtree(base, ignore_errors=True)


class LazyMount:
    """One lazyfs filesystem: `backing` (the durable image at rest) mounted on `mount_dir`."""

    def __init__(self, base, mount_dir, eager_dirs=False):
        self.backing = os.path.join(base, "backing")
        self.state = os.path.join(base, "lazyfs")
        self.log_path = os.path.join(base, "lazyfs.log")
        self.mount_dir = mount_dir
        self.eager_dirs = eager_dirs
        self.proc = None
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(mount_dir, exist_ok=True)

    def mount(self, timeout=20.0):
        argv = [sys.executable, LAZYFS, "--backing", self.backing, "--state", self.state, "--mount", self.mount_dir]
        if self.eager_dirs:
            argv.append("--eager-dirs")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.mount_dir):
            if self.proc.poll() is not None:
                raise RuntimeError("lazyfs exited with status %s before mounting: %s"
                                   % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("lazyfs did not mount %s within %.0fs: %s"
                                   % (self.mount_dir, timeout, self.log_tail()))
            time.sleep(0.01)

    def cut(self, mode, seed=0):
        """Unmounts; the filesystem leaves in `backing` what survives `mode` (sync, clean, torn, zero).
        Returns the filesystem's report. The processes using the mount must be dead already."""
        if self.proc is None:
            return {}
        # Written first: an armed fsync that the filesystem holds returns when this file appears.
        with open(os.path.join(self.state, "cut.json"), "w") as f:
            json.dump({"mode": mode, "seed": seed}, f)
        for attempt in range(50):
            r = subprocess.run(["umount", self.mount_dir], capture_output=True, text=True)
            if r.returncode == 0 or not os.path.ismount(self.mount_dir):
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", self.mount_dir], capture_output=True)
        try:
            status = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("lazyfs did not finish its cut within 120s: %s" % self.log_tail())
        self.proc = None
        if status != 0:
            raise RuntimeError("lazyfs exited with status %s: %s" % (status, self.log_tail()))
        with open(os.path.join(self.state, "cut-report.json")) as f:
            return json.load(f)

    def arm_fsync(self):
        """The next fsync of a file with un-synced writes will hang until the cut (see lazyfs.py)."""
        open(os.path.join(self.state, "arm-fsync"), "w").close()

    def fail_next_fsync(self):
        """The next fsync of a file with un-synced writes fails with EIO and drops them (see lazyfs.py)."""
        open(os.path.join(self.state, "fail-fsync"), "w").close()

    def fsync_failure_pending(self):
        return os.path.exists(os.path.join(self.state, "fail-fsync"))

    def release(self):
        """Lets a held fsync fail (after its caller was SIGKILLed)."""
        open(os.path.join(self.state, "release"), "w").close()

    def wait_fsync_hit(self, timeout):
        """Whether an armed fsync was reached within `timeout` seconds (path of its file, or None)."""
        hit = os.path.join(self.state, "fsync-hit")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(hit):
                try:
                    with open(hit) as f:
                        return f.read() or "?"
                except OSError:
                    pass
            time.sleep(0.002)
        return None

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class PowerCutServer(ServerProc):
    """A ServerProc whose kill() is a power cut: SIGKILL of the process group, then the filesystem drops
    its volatile layer (in a mode drawn from `modes`) and is mounted again. The crash suite's scenarios
    call kill() at their crash points (during BGSAVE, BGREWRITEAOF, start-up), so they become power cuts."""

    def __init__(self, label, argv, data_dir, options, mount, rng, modes, result):
        super().__init__(label, argv, data_dir, options)
        self.mount, self.rng, self.modes, self.result = mount, rng, modes, result
        self.cuts = True

    def kill(self, held=False):
        """`held`: the filesystem holds one of the server's fsyncs (an armed cut): SIGKILL first, then
        release it, or the process could not die."""
        had = self.proc is not None
        if held and self.proc is not None and self.proc.poll() is None:
            self.signalled = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.mount.release()
        super().kill()
        if not had or not self.cuts:
            return
        mode = self.rng.choice(self.modes)
        report = self.mount.cut(mode, self.rng.randrange(1 << 31))
        self.result.count("cuts %s" % mode)
        if report.get("unsynced_bytes"):
            self.result.count("un-synced bytes dropped or torn", report["unsynced_bytes"]
                              - report.get("kept_unsynced_bytes", 0))
        for what in ("fsync", "fsyncdir"):
            self.result.count("%s calls seen by the filesystem" % what, report.get(what, 0))
        if report.get("fsync_eio"):
            self.result.count("fsync EIO injected", report["fsync_eio"])
            self.result.count("bytes the failed fsyncs dropped", report["eio_dropped_bytes"])
        if report.get("zero_bytes"):
            self.result.count("zero-filled tail bytes", report["zero_bytes"])
        self.mount.mount()

    def shutdown(self):
        """End of the scenario: SIGKILL without a cut, then a clean unmount."""
        self.cuts = False
        super().kill()
        self.mount.cut("sync")


def _powercut(base, name, options, modes, everysec, startup_cuts=0.0, fsync_cuts=0.0, fill=None, proves=""):
    attrs = {"name": name, "options": options, "modes": modes, "everysec": everysec,
             "startup_cuts": startup_cuts, "fsync_cuts": fsync_cuts, "proves": proves}
    if fill is not None:
        attrs["fill"] = fill
    return type(name.replace("-", "_"), (base,), attrs)


class EverysecRuns:
    """Mixin for everysec scenarios: each run lasts longer than the loss window, so that some writes
    must survive the cut (a run shorter than the window would check nothing)."""

    everysec_window = 2.0

    def run_time(self):
        return self.rng.uniform(self.everysec_window + 0.3, self.everysec_window + 1.5)


class FsyncCuts:
    """Mixin: a share (`fsync_cuts`) of the cuts happen just before an fsync of a file that has un-synced
    writes (the filesystem holds that fsync), which is where a torn or zero-filled tail is largest:
    under `always` the group commit written but not yet fsynced (whose replies must not have been sent),
    under `everysec` up to a second of appends. The rest happen at a random moment."""

    fsync_cuts = 0.0

    def crash(self, srv, cycle):
        if not (self.fsync_cuts and self.rng.random() < self.fsync_cuts):
            return super().crash(srv, cycle)
        time.sleep(self.run_time())
        srv.mount.arm_fsync()
        hit = srv.mount.wait_fsync_hit(5.0)
        self.result.count("cuts just before an fsync" if hit else "armed cuts that no fsync reached in 5s")
        if self.ctx.verbose:
            print("    cut held the fsync of %s" % hit, flush=True)
        t = time.monotonic()
        srv.kill(held=True)  # also when no hit was seen: one may come between the wait and the kill
        return [ALL_ACKED], t


class FsyncError(crash.Scenario):
    """One fsync fails with EIO (its data never reaches the disk, as on Linux), the workload goes on for
    longer than the everysec window, then the power is cut. Under `always` the server may stop (Redis
    exits); under `everysec` it may refuse writes with MISCONF until it has recovered. Either way nothing
    it acknowledged may be lost beyond what the policy allows, and it must start again."""

    allows_misconf = True

    def crash(self, srv, cycle):
        time.sleep(self.rng.uniform(0.3, 1.0))
        srv.mount.fail_next_fsync()
        # Under everysec, long enough for the failing fsync, the server's reaction and the 2 s window.
        time.sleep(self.rng.uniform(self.everysec_window + 0.5, self.everysec_window + 1.5) if self.everysec
                   else self.rng.uniform(0.5, 1.5))
        if srv.mount.fsync_failure_pending():
            self.result.count("armed fsync failures that no fsync reached")
        t = time.monotonic()
        srv.kill()
        return [ALL_ACKED], t


class StartupCuts:
    """Mixin: with probability `startup_cuts`, a restart is first cut once during start-up."""

    def restart(self, srv, cycle):
        if self.startup_cuts and self.rng.random() < self.startup_cuts:
            self.load_seconds = crash.kill_while_loading(srv, self.rng, self.result, 1,
                                                         getattr(self, "load_seconds", None))
        else:
            srv.start()


CLEAN_OR_TORN = ["clean", "torn"]
ALL = [
    _powercut(type("PcKill", (StartupCuts, FsyncCuts, crash.AofAlwaysKill), {}), "pc-always", crash.AOF_ALWAYS,
              CLEAN_OR_TORN, False, startup_cuts=0.3, fsync_cuts=0.5,
              proves="appendfsync always, power cut at a random moment or just before an fsync (a third "
                     "also during the next start-up), un-synced writes dropped or torn: nothing acknowledged "
                     "is lost"),
    _powercut(type("PcKillE", (EverysecRuns, StartupCuts, FsyncCuts, crash.AofEverysecKill), {}), "pc-everysec",
              crash.AOF_EVERYSEC, CLEAN_OR_TORN, True, startup_cuts=0.3, fsync_cuts=0.5,
              proves="appendfsync everysec, power cut: only writes acknowledged in the last ~2 s may be "
                     "lost, and per connection the survivors are a prefix"),
    _powercut(type("PcZero", (FsyncCuts, crash.AofAlwaysKill), {}), "pc-always-zero-tail", crash.AOF_ALWAYS,
              ["zero"], False, fsync_cuts=1.0,
              proves="appendfsync always, cut just before an fsync, the un-synced grown tail reads back as "
                     "zeros: the server starts (the zero tail is cut) and loses nothing acknowledged"),
    _powercut(type("PcZeroE", (EverysecRuns, FsyncCuts, crash.AofEverysecKill), {}), "pc-everysec-zero-tail",
              crash.AOF_EVERYSEC, ["zero"], True, fsync_cuts=1.0,
              proves="appendfsync everysec, cut just before an fsync, zero-filled tail: the server starts, "
                     "loses only the last ~2 s"),
    _powercut(FsyncError, "pc-always-fsync-eio", crash.AOF_ALWAYS, ["clean"], False,
              proves="appendfsync always, one fsync fails with EIO and drops its data: the server stops or "
                     "refuses writes rather than acknowledge them; after the cut nothing acknowledged is lost"),
    _powercut(FsyncError, "pc-everysec-fsync-eio", crash.AOF_EVERYSEC, ["clean"], True,
              proves="appendfsync everysec, one fsync fails with EIO and drops its data (a retried fsync "
                     "succeeds over it): the server must refuse writes (MISCONF) and write a fresh AOF before "
                     "acknowledging again; after the cut only the last ~2 s may be lost"),
    _powercut(type("PcRewrite", (crash.AofKillDuringRewrite,), {}), "pc-always-bgrewriteaof", crash.AOF_ALWAYS,
              CLEAN_OR_TORN, False, fill=20_000,
              proves="power cut at a random point of BGREWRITEAOF (new base, incr, manifest replacement): "
                     "old or new files, never a mix, nothing acknowledged lost"),
    _powercut(crash.RdbKillDuringBgsave, "pc-rdb-bgsave", crash.RDB_MANUAL, CLEAN_OR_TORN, False,
              fill=20_000,
              proves="RDB only, power cut during BGSAVE (and half the restarts during start-up): exactly "
                     "one completed snapshot survives"),
]
BY_NAME = {s.name: s for s in ALL}


def observes_after_cut(options):
    """Observed writes must survive a power cut under `appendfsync always`: a reply may not show a value
    whose record is not fsynced. Under everysec and no a power cut may take back what was only written
    (readers may have seen it; a SIGKILL could not take it back, which the crash suite checks)."""
    fsync = None
    for i, word in enumerate(options[:-1]):
        if word == "--appendfsync":
            fsync = options[i + 1]
    return observed.applies(options) and fsync == "always"


def run_scenario(cls, label, argv, ctx, seed, log, everysec_window=2.0, eager_dirs=False):
    """Like scenarios.run_scenario, on a lazyfs mount, and it keeps cycling after a failed check (the
    recovered state becomes the next base) so that every cycle's figures are counted."""
    result = crash.ScenarioResult(label, cls.name)
    rng = random.Random("%d:%s" % (seed, cls.name))
    scenario = cls(ctx, rng, result)
    scenario.everysec_window = everysec_window
    base = os.path.join(ctx.root, label, cls.name)
    data_dir = os.path.join(base, "data")
    if os.path.ismount(data_dir):
        subprocess.run(["umount", "-l", data_dir], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)
    result.data_dir = base
    mount = LazyMount(base, data_dir, eager_dirs)
    srv = PowerCutServer(label, argv, data_dir, cls.options + ctx.extra_args, mount, rng, cls.modes, result)
    plan = KeyPlan(ctx.workers)
    observed.prepare(plan)
    model = Model(plan)
    started = time.monotonic()
    workload = None
    failed_cycles = 0
    try:
        mount.mount()
        srv.start()
        crash._preflight(srv, result)
        crash._check(result, model, [], ALL_ACKED, srv, plan, None, "initial empty state")
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
            observer = observed.ObservedCounter(srv.port) if observes_after_cut(srv.options) else None
            if observer:
                observer.start()
            windows, crash_time = scenario.crash(srv, cycle)
            if srv.alive():
                srv.kill()
            if srv.unexpected_exits and getattr(cls, "allows_misconf", False):
                result.count("server stopped on its own after the fsync error", len(srv.unexpected_exits))
                srv.unexpected_exits = []
            if srv.unexpected_exits:
                result.failures.append("cycle %d: the server exited on its own (status %s) before the cut; "
                                       "log tail:\n%s" % (cycle, srv.unexpected_exits, srv.log_tail(10)))
                srv.unexpected_exits = []
            workload.join()
            if observer:
                observer.stop()
                observer.join()
            result.ops_sent += workload.op_count()
            errs = workload.errors()
            if getattr(cls, "allows_misconf", False):
                refused = [e for e in errs if "MISCONF" in e]
                if refused:
                    result.count("writes refused with MISCONF", len(refused))
                errs = [e for e in errs if "MISCONF" not in e]
            if errs:
                result.error_replies += len(errs)
                for e in errs[:5]:
                    result.failures.append("cycle %d: unexpected reply: %s" % (cycle, e))
            logs = workload.logs()
            workload = None
            if cls.everysec:
                windows = [Window(crash_time - everysec_window, float("inf"),
                                  "acknowledged more than %.1fs before the cut" % everysec_window)
                           if w is ALL_ACKED else w for w in windows]
            before = (result.lost, result.phantoms, result.torn, result.bad_ttl, len(result.failures))
            try:
                scenario.restart(srv, cycle)
            except StartFailed as e:
                result.count("restarts refused")
                raise StartFailed("cycle %d: the server did not start after the power cut: %s" % (cycle, e)) from e
            lost_observed = observer.check(srv.port) if observer else None
            if lost_observed:
                result.failures.append("cycle %d: %s" % (cycle, lost_observed))
            crash._check_windows(result, model, logs, windows, srv, plan, crash_time, "cycle %d" % cycle)
            if (result.lost, result.phantoms, result.torn, result.bad_ttl, len(result.failures)) != before:
                failed_cycles += 1
            cycle += 1
            result.cycles = cycle
            if ctx.verbose:
                log("  %s cycle %d: %d ops, %s" % (cls.name, cycle, sum(len(x) for x in logs),
                                                 "ok" if result.passed else "FAIL"))
    except (StartFailed, RuntimeError, ServerGone, OSError) as e:
        result.aborted = "%s: %s" % (type(e).__name__, e)
    except Exception as e:  # noqa: BLE001 - a malformed reply must not stop the other scenarios
        result.aborted = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    finally:
        if workload is not None:
            workload.stop_event.set()
        try:
            srv.shutdown()
        except RuntimeError as e:
            result.aborted = result.aborted or "RuntimeError: %s" % e
        if os.path.ismount(data_dir):
            subprocess.run(["umount", "-l", data_dir], capture_output=True)
        if workload is not None:
            try:
                workload.join(10)
            except RuntimeError:
                pass
    if failed_cycles:
        result.count("failed cycles", failed_cycles)
    result.seconds = time.monotonic() - started
    if result.passed:
        shutil.rmtree(result.data_dir, ignore_errors=True)
    return result
