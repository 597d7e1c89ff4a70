#!/usr/bin/env python3
"""Tests of the power-cut filesystem itself (crashtest/lazyfs.py): what survives a cut of each mode.
Skipped (with the reason) where FUSE cannot be mounted. Run: python3 conformance/crash/test_lazyfs.py"""
import errno
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from crashtest import powercut  # noqa: E402

UNAVAILABLE = "needs root" if os.geteuid() != 0 else powercut.fuse_unavailable()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append(path, data, sync=False, create=True):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0), 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


@unittest.skipIf(UNAVAILABLE, "FUSE: %s" % UNAVAILABLE)
class LazyFSTest(unittest.TestCase):
    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="lazyfs-test-")
        self.mnt = os.path.join(self.base, "mnt")
        self.fs = powercut.LazyMount(self.base, self.mnt)
        self.fs.mount()

    def tearDown(self):
        if self.fs.proc is not None:
            self.fs.cut("sync")
        shutil.rmtree(self.base, ignore_errors=True)

    def p(self, *names):
        return os.path.join(self.mnt, *names)

    def backing(self, *names):
        return os.path.join(self.fs.backing, *names)

    def read_backing(self, *names):
        with open(self.backing(*names), "rb") as f:
            return f.read()

    def cut(self, mode, seed=0, remount=False):
        report = self.fs.cut(mode, seed)
        if remount:
            self.fs.mount()
        return report

    def test_unsynced_data_is_dropped_and_synced_data_kept(self):
        append(self.p("a"), b"durable", sync=True)
        fsync_dir(self.mnt)
        append(self.p("a"), b" volatile")
        with open(self.p("a"), "rb") as f:
            self.assertEqual(f.read(), b"durable volatile")  # the live view has everything
        report = self.cut("clean", remount=True)
        self.assertEqual(report["unsynced_bytes"], 9)
        with open(self.p("a"), "rb") as f:
            self.assertEqual(f.read(), b"durable")

    def test_new_entries_need_a_directory_fsync(self):
        os.mkdir(self.p("d"))
        append(self.p("d", "f"), b"data", sync=True)
        append(self.p("g"), b"data", sync=True)
        self.cut("clean")
        self.assertEqual(os.listdir(self.fs.backing), [])
        self.fs.mount()
        os.mkdir(self.p("d"))
        append(self.p("d", "f"), b"data", sync=True)
        fsync_dir(self.mnt)  # makes d durable, but not d/f
        self.cut("clean")
        self.assertEqual(os.listdir(self.backing("d")), [])
        self.fs.mount()
        append(self.p("d", "f"), b"data", sync=True)  # d survived the last cut, empty
        fsync_dir(self.p("d"))
        fsync_dir(self.mnt)
        self.cut("clean")
        self.assertEqual(self.read_backing("d", "f"), b"data")

    def test_a_durable_entry_without_synced_data_is_empty(self):
        append(self.p("a"), b"never synced")
        fsync_dir(self.mnt)
        self.cut("clean")
        self.assertEqual(self.read_backing("a"), b"")

    def test_rename_and_unlink_need_a_directory_fsync(self):
        append(self.p("a"), b"old", sync=True)
        append(self.p("b"), b"gone", sync=True)
        fsync_dir(self.mnt)
        append(self.p("tmp"), b"new", sync=True)
        os.rename(self.p("tmp"), self.p("a"))
        os.unlink(self.p("b"))
        self.cut("clean", remount=True)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["a", "b"])
        with open(self.p("a"), "rb") as f:
            self.assertEqual(f.read(), b"old")
        append(self.p("tmp"), b"new", sync=True)
        os.rename(self.p("tmp"), self.p("a"))
        os.unlink(self.p("b"))
        fsync_dir(self.mnt)
        self.cut("clean")
        self.assertEqual(os.listdir(self.fs.backing), ["a"])
        self.assertEqual(self.read_backing("a"), b"new")

    def test_torn_keeps_a_prefix_of_the_unsynced_writes(self):
        append(self.p("a"), b"base", sync=True)
        fsync_dir(self.mnt)
        chunks = [b"<%03d>" % i for i in range(50)]
        for c in chunks:
            append(self.p("a"), c, create=False)
        full = b"base" + b"".join(chunks)
        lengths = set()
        for seed in range(12):
            self.cut("torn", seed, remount=True)
            with open(self.p("a"), "rb") as f:
                got = f.read()
            self.assertEqual(got, full[:len(got)])
            self.assertGreaterEqual(len(got), 4)
            lengths.add(len(got))
            # Put the volatile writes back for the next seed.
            with open(self.p("a"), "r+b") as f:
                f.truncate(4)
                os.fdatasync(f.fileno())
            for c in chunks:
                append(self.p("a"), c, create=False)
        self.assertGreater(len(lengths), 3)

    def test_zero_keeps_the_new_length_with_a_zero_filled_tail(self):
        append(self.p("a"), b"base", sync=True)
        fsync_dir(self.mnt)
        append(self.p("a"), b"x" * 1000, create=False)
        report = self.cut("zero", 7)
        got = self.read_backing("a")
        self.assertEqual(len(got), 1004)
        self.assertTrue(got.startswith(b"base"))
        kept = len(got[4:].rstrip(b"\0"))
        self.assertEqual(got[4:4 + kept], b"x" * kept)
        self.assertEqual(report["zero_bytes"], 1000 - kept)

    def test_a_failed_fsync_drops_its_data_and_the_retry_succeeds(self):
        append(self.p("a"), b"base", sync=True)
        fsync_dir(self.mnt)
        self.fs.fail_next_fsync()
        fd = os.open(self.p("a"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"lost")
            with self.assertRaises(OSError) as err:
                os.fdatasync(fd)
            self.assertEqual(err.exception.errno, errno.EIO)
            os.fdatasync(fd)  # the retry succeeds: nothing is dirty any more
            os.write(fd, b"tail")
            os.fdatasync(fd)
        finally:
            os.close(fd)
        with open(self.p("a"), "rb") as f:
            self.assertEqual(f.read(), b"baselosttail")  # still visible until the cut
        report = self.cut("clean")
        self.assertEqual(report["fsync_eio"], 1)
        self.assertEqual(self.read_backing("a"), b"base\0\0\0\0tail")  # a hole where the data was

    def test_an_armed_cut_holds_the_fsync_until_released(self):
        append(self.p("a"), b"base", sync=True)
        fsync_dir(self.mnt)
        self.fs.arm_fsync()
        fd = os.open(self.p("a"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"pending")
            result = []
            t = threading.Thread(target=lambda: result.append(self._fsync_errno(fd)))
            t.start()
            self.assertEqual(self.fs.wait_fsync_hit(5.0), "/a")
            self.assertTrue(t.is_alive())
            self.fs.release()
            t.join(5.0)
            self.assertEqual(result, [errno.EIO])
        finally:
            os.close(fd)
        self.cut("clean")
        self.assertEqual(self.read_backing("a"), b"base")

    @staticmethod
    def _fsync_errno(fd):
        try:
            os.fdatasync(fd)
            return 0
        except OSError as e:
            return e.errno

    def test_sync_unmount_keeps_everything(self):
        os.mkdir(self.p("d"))
        append(self.p("d", "f"), b"kept")
        self.cut("sync")
        self.assertEqual(self.read_backing("d", "f"), b"kept")

    def test_eager_directories(self):
        self.fs.cut("sync")
        self.fs = powercut.LazyMount(self.base, self.mnt, eager_dirs=True)
        self.fs.mount()
        os.mkdir(self.p("d"))
        append(self.p("d", "f"), b"data", sync=True)
        append(self.p("d", "g"), b"data")
        self.cut("clean")
        self.assertEqual(self.read_backing("d", "f"), b"data")
        self.assertEqual(self.read_backing("d", "g"), b"")


if __name__ == "__main__":
    unittest.main()
