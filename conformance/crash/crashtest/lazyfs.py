#!/usr/bin/env python3
"""A LazyFS-like FUSE filesystem: a passthrough that loses, on a "power cut", whatever was not made durable.

    python3 lazyfs.py --backing DIR --state DIR --mount DIR [--eager-dirs]

While mounted, every operation goes to a *live* copy of the backing directory (state/live), which is what
the page cache is to a real disk: the processes on the mount see every write at once. Beside it the
filesystem keeps the *durable* image as a disk would after a crash:

- file data: state/store/<inode id>, updated only by fsync/fdatasync of that file (the un-synced writes are
  kept in memory, in order, as they were issued);
- directory entries: a name -> inode map per directory, replaced by the live listing only when that
  directory is fsynced (create, rename, unlink, link, mkdir and rmdir are volatile until then). With
  --eager-dirs every directory operation is durable at once (only file data is volatile).

Unmounting ends the session. What the backing directory holds afterwards is chosen by state/cut.json,
written by the harness before it unmounts (the processes using the mount are already SIGKILLed):

    absent or {"mode": "sync"}   a clean shutdown: the live tree becomes the backing directory as it is;
    {"mode": "clean"}            a power cut: only the durable image survives;
    {"mode": "torn", "seed": N}  a power cut where each file keeps a random prefix of its un-synced writes in
                                 issue order, the last one torn at a random byte (what a disk that wrote
                                 some of its queue can leave);
    {"mode": "zero", "seed": N}  as torn, but never all of the writes, and every file that the un-synced
                                 writes grew keeps the new length with the rest of the grown range reading
                                 as zeros (ext4/xfs after a crash when the size was committed before the
                                 data).

Entries reach the backing directory only through durable directory entries, from the root down: a file
created and fsynced whose directory was never fsynced is lost, as on a real disk. A report of what the cut
dropped goes to state/cut-report.json.

To cut at the worst moment, the harness may create state/arm-fsync: the next fsync of a file with un-synced
writes then creates state/fsync-hit, freezes the durable image and waits (never applying them) until
state/release or cut.json appears, then fails with EIO. If it creates state/fail-fsync, the next fsync of a
file with un-synced writes fails with EIO and those writes never become durable (Linux marks the pages
clean after a failed writeback: a retried fsync succeeds without them), then fsync works again.

Needs root, /dev/fuse, fusepy (the `fuse` module) and libfuse.so.2 (Debian libfuse2).
"""
import argparse
import errno
import json
import os
import random
import shutil
import stat
import sys
import threading
import time

from fuse import FUSE, FuseOSError, Operations  # fusepy 3.0.1

ROOT = 0


class LazyFS(Operations):
    def __init__(self, state, eager_dirs=False):
        self.arm_path = os.path.join(state, "arm-fsync")
        self.hit_path = os.path.join(state, "fsync-hit")
        self.release_path = os.path.join(state, "release")
        self.eio_path = os.path.join(state, "fail-fsync")
        self.frozen = False      # the power went out at an armed fsync: nothing becomes durable any more
        self.cut_path = os.path.join(state, "cut.json")
        self.live = os.path.join(state, "live")
        self.store = os.path.join(state, "store")
        self.eager = eager_dirs
        self.lock = threading.RLock()
        self.ids = {}            # live st_ino -> inode id (ids are never reused, st_ino may be)
        self.kind = {}           # id -> "d" | "f"
        self.dirs = {}           # directory id -> {name: id}, as of its last fsync
        self.pending = {}        # file id -> [("w", offset, bytes) | ("t", length)] since its last fsync
        self.fds = {}            # fh -> id
        self.next_id = 1
        self.stats = {"fsync": 0, "fsyncdir": 0, "writes": 0, "fsync_eio": 0, "eio_dropped_bytes": 0}

    # --- inode bookkeeping -------------------------------------------------------------------------

    def _p(self, path):
        return self.live + path

    def _new(self, live_path, kind):
        ident = self.next_id
        self.next_id += 1
        self.ids[os.lstat(live_path).st_ino] = ident
        self.kind[ident] = kind
        if kind == "d":
            self.dirs[ident] = {}
        else:
            self.pending[ident] = []
        return ident

    def _id(self, live_path):
        st = os.lstat(live_path)
        ident = self.ids.get(st.st_ino)
        if ident is None:  # not created through us (cannot happen while mounted); treat as new and volatile
            ident = self._new(live_path, "d" if stat.S_ISDIR(st.st_mode) else "f")
        return ident

    def load(self, backing):
        """Copies the backing directory into the live tree and the durable image (all of it durable)."""
        for d in (self.live, self.store):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(self.store)
        shutil.copytree(backing, self.live, symlinks=True)
        self.ids[os.lstat(self.live).st_ino] = ROOT
        self.kind[ROOT] = "d"
        self.dirs[ROOT] = {}
        for top, subdirs, files in os.walk(self.live):
            parent = self._id(top)
            for name in subdirs:
                self.dirs[parent][name] = self._new(os.path.join(top, name), "d")
            for name in files:
                ident = self._new(os.path.join(top, name), "f")
                self.dirs[parent][name] = ident
                shutil.copyfile(os.path.join(top, name), os.path.join(self.store, str(ident)))

    def _sync_file(self, ident):
        ops = self.pending.get(ident)
        path = os.path.join(self.store, str(ident))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for op in ops or ():
                if op[0] == "w":
                    os.pwrite(fd, op[2], op[1])
                else:
                    os.ftruncate(fd, op[1])
        finally:
            os.close(fd)
        self.pending[ident] = []

    def _sync_dir(self, path):
        live = self._p(path)
        ident = self._id(live)
        self.dirs[ident] = {name: self._id(os.path.join(live, name)) for name in os.listdir(live)}

    def _dir_changed(self, *paths):
        if self.eager and not self.frozen:
            for p in paths:
                self._sync_dir(os.path.dirname(p) or "/")

    # --- FUSE operations ---------------------------------------------------------------------------

    def __call__(self, op, *args):
        with self.lock:
            try:
                return getattr(self, op)(*args)
            except OSError as e:
                raise FuseOSError(e.errno or errno.EIO) from None

    def access(self, path, amode):
        if not os.access(self._p(path), amode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.fstat(fh) if fh is not None and fh in self.fds else os.lstat(self._p(path))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
                                            "st_size", "st_uid", "st_blocks")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def readlink(self, path):
        return os.readlink(self._p(path))

    def statfs(self, path):
        sv = os.statvfs(self._p(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                            "f_files", "f_flag", "f_frsize", "f_namemax")}

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._p(path), times)

    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)
        self._new(self._p(path), "d")
        self._dir_changed(path)

    def rmdir(self, path):
        os.rmdir(self._p(path))
        self._dir_changed(path)

    def unlink(self, path):
        os.unlink(self._p(path))
        self._dir_changed(path)

    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))
        self._dir_changed(old, new)

    def link(self, target, source):
        os.link(self._p(source), self._p(target))
        self._dir_changed(target)

    def symlink(self, target, source):
        raise FuseOSError(errno.EPERM)

    def mknod(self, path, mode, dev):
        raise FuseOSError(errno.EPERM)

    def create(self, path, mode, fi=None):
        fd = os.open(self._p(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
        self.fds[fd] = self._new(self._p(path), "f")
        self._dir_changed(path)
        return fd

    def open(self, path, flags):
        ident = self._id(self._p(path))
        fd = os.open(self._p(path), (flags & os.O_ACCMODE) | (flags & os.O_TRUNC))
        if flags & os.O_TRUNC and not self.frozen:
            self.pending.setdefault(ident, []).append(("t", 0))
        self.fds[fd] = ident
        return fd

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        n = os.pwrite(fh, data, offset)
        if not self.frozen:
            self.pending.setdefault(self.fds[fh], []).append(("w", offset, bytes(data[:n])))
        self.stats["writes"] += 1
        return n

    def truncate(self, path, length, fh=None):
        if fh is not None and fh in self.fds:
            os.ftruncate(fh, length)
            ident = self.fds[fh]
        else:
            os.truncate(self._p(path), length)
            ident = self._id(self._p(path))
        if not self.frozen:
            self.pending.setdefault(ident, []).append(("t", length))

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        self.fds.pop(fh, None)
        os.close(fh)
        return 0

    def fsync(self, path, datasync, fh):
        self.stats["fsync"] += 1
        ident = self.fds[fh] if fh in self.fds else self._id(self._p(path))
        if self.frozen:
            raise FuseOSError(errno.EIO)
        dirty = any(op[0] == "w" for op in self.pending.get(ident, ()))
        if dirty and os.path.exists(self.eio_path):
            # One injected I/O error, as Linux reports a failed writeback: the dirty pages are marked clean,
            # so their data stays visible (live) but never reaches the disk, and a retried fsync succeeds.
            os.unlink(self.eio_path)
            self.stats["fsync_eio"] += 1
            self.stats["eio_dropped_bytes"] += sum(len(op[2]) for op in self.pending[ident] if op[0] == "w")
            self.pending[ident] = []
            raise FuseOSError(errno.EIO)
        if dirty and os.path.exists(self.arm_path):
            # Armed: the power goes out just before this fsync. The durable image is frozen as it is; the
            # harness SIGKILLs the caller, then creates `release`. The kernel does not let a process that
            # is waiting for an answer the daemon has already read die before the answer comes, and a
            # SIGKILLed one runs no more user code once it has it, so the EIO is never seen.
            self.frozen = True
            with open(self.hit_path, "w") as f:
                f.write(path)
            deadline = time.monotonic() + 60
            while not (os.path.exists(self.release_path) or os.path.exists(self.cut_path)):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            raise FuseOSError(errno.EIO)
        self._sync_file(ident)
        return 0

    def opendir(self, path):
        return 0

    def releasedir(self, path, fh):
        return 0

    def fsyncdir(self, path, datasync, fh):
        if self.frozen:
            raise FuseOSError(errno.EIO)
        self.stats["fsyncdir"] += 1
        self._sync_dir(path)
        return 0

    # --- the cut -----------------------------------------------------------------------------------

    def materialize(self, out, mode, seed):
        """Writes what survives into `out` (a new directory); returns a report of what was dropped."""
        rng = random.Random(seed)
        report = {"mode": mode, "files": 0, "files_with_unsynced_writes": 0, "unsynced_bytes": 0,
                  "kept_unsynced_bytes": 0, "zero_bytes": 0}
        seen = set()

        def walk(ident, path):
            if ident in seen:
                return
            seen.add(ident)
            os.mkdir(path)
            for name, child in sorted(self.dirs.get(ident, {}).items()):
                if self.kind.get(child) == "d":
                    walk(child, os.path.join(path, name))
                else:
                    self._write_file(child, os.path.join(path, name), mode, rng, report)

        walk(ROOT, out)
        return report

    def _write_file(self, ident, dst, mode, rng, report):
        src = os.path.join(self.store, str(ident))
        if os.path.exists(src):
            shutil.copyfile(src, dst)
        else:
            open(dst, "wb").close()
        report["files"] += 1
        ops = self.pending.get(ident) or []
        if not ops:
            return
        report["files_with_unsynced_writes"] += 1
        report["unsynced_bytes"] += sum(len(op[2]) for op in ops if op[0] == "w")
        if mode == "clean":
            return
        durable_size = os.path.getsize(dst)
        final_size = durable_size
        for op in ops:
            final_size = max(final_size, op[1] + len(op[2])) if op[0] == "w" else op[1]
        # torn: ops[:keep] reached the disk, ops[keep] partly. zero: the same, but never all of them, so
        # that some of the grown range reads as zeros.
        keep = rng.randint(0, len(ops) - (1 if mode == "zero" else 0))
        with open(dst, "r+b") as f:
            for i, op in enumerate(ops[:keep + 1]):
                if op[0] == "t":
                    if i < keep:
                        f.truncate(op[1])
                    continue
                cap = len(op[2]) - (1 if mode == "zero" and op[2] else 0)
                data = op[2] if i < keep else op[2][:rng.randint(0, cap)]
                f.seek(op[1])
                f.write(data)
                report["kept_unsynced_bytes"] += len(data)
            if mode == "zero":
                f.seek(0, os.SEEK_END)
                size = f.tell()
                if final_size > size:
                    f.truncate(final_size)
                    report["zero_bytes"] += final_size - size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backing", required=True, help="the durable image at rest (read at mount, rebuilt at unmount)")
    ap.add_argument("--state", required=True, help="working directory: live tree, durable data, cut.json")
    ap.add_argument("--mount", required=True, help="mount point")
    ap.add_argument("--eager-dirs", action="store_true", help="directory operations are durable at once")
    args = ap.parse_args()
    backing, state = os.path.abspath(args.backing), os.path.abspath(args.state)
    os.makedirs(state, exist_ok=True)
    os.makedirs(backing, exist_ok=True)
    cut_path = os.path.join(state, "cut.json")
    for stale in (cut_path, os.path.join(state, "cut-report.json"), os.path.join(state, "arm-fsync"),
                  os.path.join(state, "fsync-hit"), os.path.join(state, "release"),
                  os.path.join(state, "fail-fsync")):
        if os.path.exists(stale):
            os.unlink(stale)
    fs = LazyFS(state, args.eager_dirs)
    fs.load(backing)
    # Single-threaded: requests are served one at a time in arrival order, which keeps the write log exact.
    FUSE(fs, args.mount, foreground=True, nothreads=True, big_writes=True, max_write=131072,
         fsname="lazyfs")
    with fs.lock:
        cut = {"mode": "sync"}
        if os.path.exists(cut_path):
            with open(cut_path) as f:
                cut = json.load(f)
        fresh = backing + ".new"
        shutil.rmtree(fresh, ignore_errors=True)
        if cut["mode"] == "sync":
            shutil.copytree(fs.live, fresh, symlinks=True)
            report = {"mode": "sync"}
        else:
            report = fs.materialize(fresh, cut["mode"], cut.get("seed", 0))
        report.update(fs.stats)
        shutil.rmtree(backing)
        os.rename(fresh, backing)
        shutil.rmtree(fs.live, ignore_errors=True)
        shutil.rmtree(fs.store, ignore_errors=True)
        with open(os.path.join(state, "cut-report.json"), "w") as f:
            json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
