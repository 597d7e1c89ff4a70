// PersistenceEngineTests: the engine's schedules on SimulatedDisk, a manual clock and hand-run jobs: no sleeps.
import Dispatch
import Glibc
import Testing
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

@Suite struct PersistenceEngineTests {
    /// Settings with a RESP AOF (readable replays) and no save points unless asked.
    func settings(appendOnly: Bool, fsync: AppendFsyncPolicy = .everysec) -> PersistenceSettings {
        var settings = PersistenceSettings()
        settings.appendOnly = appendOnly
        settings.fsyncPolicy = fsync
        settings.useRDBPreamble = false
        settings.savePoints = []
        return settings
    }

    func started(_ settings: PersistenceSettings) throws -> PersistenceHarness {
        let harness = PersistenceHarness(settings: settings)
        try harness.start()
        return harness
    }

    func manifest(_ harness: PersistenceHarness) -> String {
        String(decoding: harness.disk.contents(of: "appendonlydir/appendonly.aof.manifest") ?? [], as: UTF8.self)
    }

    func replay(_ harness: PersistenceHarness) throws -> [String] {
        try replayed(AOFLoader(storage: harness.disk, directory: "appendonlydir")).commands
    }

    /// CONFIG SET appendonly yes writes a base from a snapshot taken with the switch while new
    /// writes go to the new incr file; appendonly no stops logging; yes again starts over.
    @Test func enableAndDisableAppendOnlyAtRuntime() throws {
        let aof = try started(settings(appendOnly: false))
        aof.run("SET", "a", "1")
        var on = aof.persistence.settings
        on.appendOnly = true
        #expect(aof.persistence.apply(on) == nil)
        #expect(aof.info("aof_enabled") == "1")
        #expect(aof.info("aof_rewrite_in_progress") == "1")
        aof.run("SET", "b", "2")
        // Redis refuses to exit while the first base is being written (the AOF is incomplete).
        #expect(!aof.persistence.shutdown(mode: .noSave))
        #expect(aof.jobs.runNext())
        #expect(manifest(aof)
                == "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
        #expect(try replay(aof) == ["0:SET a 1", "0:SET b 2"])
        #expect(aof.info("aof_rewrites") == "1")
        let offsetWhileOn = aof.commands.session.pendingLogOffset

        var off = on
        off.appendOnly = false
        #expect(aof.persistence.apply(off) == nil)
        #expect(aof.info("aof_enabled") == "0")
        #expect(aof.commands.engine.attachedLog == nil)
        aof.run("SET", "c", "3")
        #expect(try replay(aof) == ["0:SET a 1", "0:SET b 2"])
        #expect(aof.run("WAITAOF", "1", "0", "0")
                == "-ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.\r\n")

        #expect(aof.persistence.apply(on) == nil)
        #expect(aof.jobs.runNext())
        aof.run("SET", "d", "4")
        #expect(manifest(aof)
                == "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n")
        let commands = try replay(aof)
        #expect(commands.sorted() == ["0:SET a 1", "0:SET b 2", "0:SET c 3", "0:SET d 4"])
        #expect(commands.last == "0:SET d 4")
        // Offsets keep growing across generations, so no session waits on an offset the new
        // writer never issued.
        #expect(aof.commands.session.pendingLogOffset > offsetWhileOn)
        #expect(aof.run("WAITAOF", "1", "0", "0") == "*2\r\n:1\r\n:0\r\n")
    }

    /// BGREWRITEAOF during a BGSAVE is scheduled and starts from the cron once the save ends.
    @Test func rewriteScheduledBehindBackgroundSave() throws {
        let aof = try started(settings(appendOnly: true))
        aof.run("SET", "k", "v")
        #expect(aof.run("BGSAVE") == "+Background saving started\r\n")
        #expect(aof.run("BGREWRITEAOF") == "+Background append only file rewriting scheduled\r\n")
        #expect(aof.info("aof_rewrite_scheduled") == "1")
        #expect(aof.info("aof_pending_rewrite") == "1")
        aof.persistence.tick()
        #expect(aof.jobs.count == 1)
        #expect(aof.info("aof_rewrite_in_progress") == "0")
        #expect(aof.jobs.runNext())
        #expect(aof.info("rdb_bgsave_in_progress") == "0")
        #expect(aof.disk.contents(of: "dump.rdb") != nil)
        aof.persistence.tick()
        #expect(aof.jobs.count == 1)
        #expect(aof.info("aof_rewrite_in_progress") == "1")
        #expect(aof.info("aof_rewrite_scheduled") == "0")
        #expect(aof.run("BGSAVE") == "-ERR Another child process is active (AOF?): can't BGSAVE right now. "
                    + "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.\r\n")
        #expect(aof.jobs.runNext())
        #expect(aof.info("aof_rewrites") == "1")
        #expect(try replay(aof) == ["0:SET k v"])
    }

    /// Three failed automatic rewrites in a row start the back-off (aofRewriteLimited): no
    /// automatic rewrite for a minute, then one, which succeeds and resets the count.
    @Test func threeRewriteFailuresBackOff() throws {
        var settings = settings(appendOnly: true)
        settings.rewriteMinimumBytes = 1
        let aof = try started(settings)
        aof.run("SET", "k", "v")
        for attempt in 1...3 {
            aof.persistence.tick()
            #expect(aof.jobs.count == 1, "attempt \(attempt)")
            // The base's temp file cannot be created.
            aof.disk.failNext(.create, errno: ENOSPC)
            #expect(aof.jobs.runNext())
            #expect(aof.info("aof_rewrites_consecutive_failures") == "\(attempt)")
            #expect(aof.info("aof_last_bgrewrite_status") == "err")
        }
        #expect(aof.logLines.lines.contains(
            "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in 1 minutes"))
        aof.persistence.tick()
        #expect(aof.jobs.count == 0)
        aof.clock.advance(by: 59_999)
        aof.persistence.tick()
        #expect(aof.jobs.count == 0)
        // BGREWRITEAOF itself is never limited; the cron is.
        aof.clock.advance(by: 1)
        aof.persistence.tick()
        #expect(aof.jobs.count == 1)
        #expect(aof.jobs.runNext())
        #expect(aof.info("aof_rewrites_consecutive_failures") == "0")
        #expect(aof.info("aof_last_bgrewrite_status") == "ok")
        #expect(aof.info("aof_rewrites") == "1")
        #expect(try replay(aof) == ["0:SET k v"])
    }

    /// everysec: a write issued while the background fsync runs is postponed up to 2 s, then
    /// written anyway and counted in aof_delayed_fsync (Redis's flushAppendOnlyFile).
    @Test func everysecPostponesWritesBehindASlowFsync() throws {
        let aof = try started(settings(appendOnly: true))
        aof.run("SET", "a", "1")
        let writer = try #require(aof.persistence.appendOnlyFile)
        aof.disk.holdFsyncs()
        let persistence = aof.persistence
        let fsync = runOnOwnThread { persistence.backgroundFsyncPass() }
        while aof.disk.fsyncsWaiting == 0 { sched_yield() }
        #expect(aof.info("aof_pending_bio_fsync") == "1")

        aof.commands.run(["SET", "b", "2"].map { Array($0.utf8) })
        let offset = aof.commands.session.pendingLogOffset
        let log = try #require(aof.commands.engine.attachedLog)
        let write = runOnOwnThread { log.waitUntilDurable(offset) }
        while !writer.status().writePostponed { sched_yield() }
        // Nothing is written while the clock stands still.
        #expect(aof.info("aof_delayed_fsync") == "0")
        #expect(aof.info("aof_buffer_length") != "0")
        aof.clock.advance(by: 1999)
        #expect(writer.status().delayedFsyncs == 0)
        aof.clock.advance(by: 1)
        write.wait()
        #expect(log.isDurable(offset))
        #expect(aof.info("aof_delayed_fsync") == "1")
        #expect(aof.info("aof_buffer_length") == "0")
        #expect(aof.logLines.lines.contains { $0.hasPrefix("Asynchronous AOF fsync is taking too long") })
        aof.disk.releaseFsyncs()
        fsync.wait()
        #expect(aof.info("aof_pending_bio_fsync") == "0")
        #expect(try replay(aof) == ["0:SET a 1", "0:SET b 2"])
    }

    /// A failed write (everysec) refuses writes with MISCONF; the retry a second later
    /// succeeds and writes are accepted again.
    @Test func misconfOnFailedWriteThenRecovery() throws {
        let aof = try started(settings(appendOnly: true))
        aof.run("SET", "a", "1")
        aof.disk.failNext(.write, errno: ENOSPC)
        aof.run("SET", "b", "2")
        let log = try #require(aof.commands.engine.attachedLog)
        // The reply to SET b is held: the data is only in memory.
        #expect(!log.isDurable(aof.commands.session.pendingLogOffset))
        #expect(aof.run("SET", "c", "3") == "-MISCONF Errors writing to the AOF file: No space left on device\r\n")
        #expect(aof.run("GET", "b") == "$1\r\n2\r\n")
        #expect(aof.info("aof_last_write_status") == "err")
        aof.persistence.tick()
        #expect(aof.info("aof_last_write_status") == "err", "retries are paced to one a second")
        aof.clock.advance(by: 1000)
        aof.persistence.tick()
        #expect(aof.info("aof_last_write_status") == "ok")
        #expect(log.isDurable(aof.commands.session.pendingLogOffset))
        #expect(aof.logLines.lines.contains("AOF write error looks solved, Redis can write again."))
        #expect(aof.run("SET", "c", "3") == "+OK\r\n")
        #expect(try replay(aof) == ["0:SET a 1", "0:SET b 2", "0:SET c 3"])
    }

    /// WAITAOF: fsyncs on demand; strict integers (string2ll) and Redis's error texts.
    @Test func waitAOF() throws {
        let off = try started(settings(appendOnly: false))
        #expect(off.run("WAITAOF", "0", "0", "0") == "*2\r\n:0\r\n:0\r\n")
        #expect(off.run("WAITAOF", "1", "0", "0")
                == "-ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.\r\n")
        for bad in [["x", "0", "0"], ["+1", "0", "0"], ["1", "01", "0"], ["1", "0", " 1"]] {
            #expect(off.run("WAITAOF", bad[0], bad[1], bad[2]) == "-ERR value is not an integer or out of range\r\n")
        }
        #expect(off.run("WAITAOF", "1", "0", "-1") == "-ERR timeout is negative\r\n")

        let aof = try started(settings(appendOnly: true))
        aof.run("SET", "k", "v")
        let incr = "appendonlydir/appendonly.aof.1.incr.aof"
        #expect(aof.disk.durableContents(of: incr) != aof.disk.contents(of: incr))
        #expect(aof.run("WAITAOF", "1", "0", "0") == "*2\r\n:1\r\n:0\r\n")
        #expect(aof.disk.durableContents(of: incr) == aof.disk.contents(of: incr))

        // A failing fsync: WAITAOF gives up when its timeout passes on the engine's clock.
        aof.run("SET", "k", "w")
        aof.disk.setFailing(.fsync, errno: EIO)
        let offset = aof.commands.session.pendingLogOffset
        let persistence = aof.persistence
        let result = LineRecorder()
        let wait = runOnOwnThread {
            result.append("\(persistence.waitFsynced(offset, timeoutMilliseconds: 100) ?? true)")
        }
        while wait.wait(timeout: .now()) == .timedOut {
            aof.clock.advance(by: 50)
            sched_yield()
        }
        #expect(result.lines == ["false"])
    }

    /// Under always, a failed fsync is reported to the owner (tally-server exits there) instead
    /// of the engine exiting, and the write is never acknowledged.
    @Test func alwaysFsyncFailureIsReportedAsFatal() throws {
        let aof = try started(settings(appendOnly: true, fsync: .always))
        aof.run("SET", "a", "1")
        #expect(aof.fatalMessages.lines.isEmpty)
        aof.disk.failNext(.fsync, errno: EIO)
        aof.run("SET", "b", "2")
        let log = try #require(aof.commands.engine.attachedLog)
        #expect(!log.isDurable(aof.commands.session.pendingLogOffset))
        #expect(aof.fatalMessages.lines.count == 1)
        #expect(aof.fatalMessages.lines.first?.hasPrefix(
            "Can't persist AOF for fsync error when the AOF fsync policy is 'always'") == true)
    }
}
