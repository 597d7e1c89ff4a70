// RDBSnapshotTests: the engine's SAVE/BGSAVE, save rules and MISCONF, saved and loaded on SimulatedDisk.
import Glibc
import Testing
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

@Suite struct RDBSnapshotTests {
    func populate(_ engine: CommandEngine, count: Int, now: Int64) {
        for index in 0..<count {
            engine.keyspace.insertLoaded(database: index % 3, key: key("k\(index)"),
                                         entry: Entry(value: .integer(Int64(index)),
                                                      expiresAtMilliseconds: index % 5 == 0 ? now + 100_000 : nil))
        }
        var fields = HashValue()
        fields.set(field: bytes("f"), value: bytes("v"))
        engine.keyspace.insertLoaded(database: 0, key: key("h"), entry: Entry(value: .hash(fields)))
    }

    func settings(_ directory: String = ".", savePoints: [SavePoint] = SavePoint.defaults) -> PersistenceSettings {
        var settings = PersistenceSettings()
        settings.directory = directory
        settings.savePoints = savePoints
        return settings
    }

    /// A started harness on `disk`.
    func harness(_ settings: PersistenceSettings, disk: SimulatedDisk = SimulatedDisk(),
                 clock: ManualClock = ManualClock()) throws -> PersistenceHarness {
        let harness = PersistenceHarness(settings: settings, disk: disk, clock: clock)
        try harness.start()
        return harness
    }

    @Test func backgroundSaveRoundTripsThroughSimulatedDisk() throws {
        let disk = SimulatedDisk()
        disk.installDirectory("data")
        let saver = try harness(settings("data"), disk: disk)
        let engine = saver.commands.engine
        populate(engine, count: 500, now: saver.clock.nowMilliseconds())
        engine.addChanges(501)
        #expect(saver.persistence.startBackgroundSave(schedule: false, deferred: false) == .started)
        #expect(saver.jobs.runNext())
        #expect(saver.info("rdb_last_bgsave_status") == "ok")
        #expect(engine.changesSinceLastSave == 0)
        #expect(try disk.listDirectory("data") == ["dump.rdb"])
        // The saved file survives a power cut (it was fsynced and its directory too).
        disk.powerCut(seed: 3)
        let restored = try harness(settings("data"), disk: disk, clock: saver.clock)
        #expect(restored.info("rdb_last_load_keys_loaded") == "501")
        #expect(restored.commands.engine.keyspace.count(database: 0) == 168)
        #expect(restored.commands.engine.keyspace.count(database: 1) == 167)
        let info = restored.info()
        #expect(info.contains("rdb_last_bgsave_status:ok\r\n"))
        #expect(info.contains("rdb_bgsave_in_progress:0\r\n"))
    }

    @Test func failedSaveRefusesWritesUntilASaveSucceeds() throws {
        let disk = SimulatedDisk()
        disk.installDirectory("data")
        let saver = try harness(settings("data", savePoints: [SavePoint(seconds: 60, changes: 1)]), disk: disk)
        disk.install("data/dump.rdb", Array("old".utf8))
        let engine = saver.commands.engine
        let clock = saver.clock
        populate(engine, count: 10, now: clock.nowMilliseconds())
        engine.addChanges(10)
        disk.setFailing(.fsync, errno: ENOSPC)
        // A failed SAVE answers -ERR but, as in Redis, does not turn on MISCONF; a failed BGSAVE does.
        #expect(saver.run("SAVE") == "-ERR\r\n")
        #expect(engine.attachedLog == nil)
        #expect(saver.run("BGSAVE") == "+Background saving started\r\n")
        #expect(saver.jobs.runNext())
        #expect(saver.run("SET", "k", "v").hasPrefix("-MISCONF Redis is configured to save RDB snapshots"))
        #expect(disk.contents(of: "data/dump.rdb") == Array("old".utf8))
        #expect(try disk.listDirectory("data") == ["dump.rdb"])
        #expect(engine.changesSinceLastSave == 10)
        // The rule fires on the cron tick only after the retry delay.
        clock.advance(by: 61_000)
        disk.setFailing(.fsync, errno: nil)
        saver.persistence.tick()
        #expect(saver.jobs.runNext())
        #expect(saver.info("rdb_last_bgsave_status") == "ok")
        #expect(saver.run("SET", "k", "v") == "+OK\r\n")
        #expect(saver.run("LASTSAVE") == ":\(clock.nowMilliseconds() / 1000)\r\n")
        #expect(saver.info("rdb_saves") == "3")
    }

    @Test func backgroundSaveWaitsForAnotherBackgroundJob() throws {
        let saver = try harness(settings(savePoints: []))
        let engine = saver.commands.engine
        populate(engine, count: 20, now: saver.clock.nowMilliseconds())
        // A rewrite (appendonly no: base + manifest only) holds the slot: plain BGSAVE is
        // refused, SCHEDULE defers it.
        #expect(saver.run("BGREWRITEAOF") == "+Background append only file rewriting started\r\n")
        #expect(saver.run("BGSAVE") == "-ERR Another child process is active (AOF?): can't BGSAVE right now. "
                    + "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.\r\n")
        #expect(saver.run("BGSAVE", "SCHEDULE") == "+Background saving scheduled\r\n")
        saver.persistence.tick()
        #expect(saver.jobs.count == 1)
        #expect(saver.disk.contents(of: "dump.rdb") == nil)
        #expect(saver.jobs.runNext())
        saver.persistence.tick()
        #expect(saver.info("rdb_bgsave_in_progress") == "1")
        // While the save runs, SAVE and another BGSAVE are refused.
        #expect(saver.run("SAVE") == "-ERR Background save already in progress\r\n")
        #expect(saver.run("BGSAVE") == "-ERR Background save already in progress\r\n")
        #expect(saver.jobs.runNext())
        #expect(saver.disk.contents(of: "dump.rdb") != nil)
        // Inside EXEC the save is always deferred to the cron.
        #expect(saver.persistence.startBackgroundSave(schedule: false, deferred: true) == .scheduled)
        saver.persistence.tick()
        #expect(saver.jobs.runNext())
        #expect(saver.info("rdb_last_bgsave_status") == "ok")
    }

    @Test func emptyDumpFileIsAnError() throws {
        let disk = SimulatedDisk()
        disk.install("dump.rdb", [])
        let broken = PersistenceHarness(settings: settings(), disk: disk)
        #expect(throws: PersistenceStartupError.self) { try broken.start() }
        do {
            try broken.start()
        } catch {
            #expect(error.message.hasPrefix("Short read or OOM loading DB."))
        }
        let missing = try harness(settings())
        #expect(missing.info("rdb_last_load_keys_loaded") == "0")
    }

    /// A RESIZEDB hint sizes the tables before the keys load, but only as far as the file can
    /// hold keys: a hint of 2^40 keys in a 40-byte dump allocates nothing of that size.
    @Test func resizeHintsAreCappedByTheFileSize() throws {
        var dump = Array("REDIS0010".utf8)
        dump += [0xFE, 0x00, 0xFB, 0x81, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        dump += [0x00, 0x01] + Array("k".utf8) + [0x01] + Array("v".utf8)
        dump += [0xFF] + Array(repeating: 0, count: 8)
        let disk = SimulatedDisk()
        disk.installDirectory("data")
        disk.install("data/dump.rdb", dump)
        let keyspace = Keyspace(databases: 16, shards: 4)
        let result = try loadSnapshotFile(storage: disk, directory: "data", fileName: "dump.rdb", into: keyspace,
                                          nowMilliseconds: 0)
        #expect(result?.keysLoaded == 1)
        #expect(keyspace.shards.allSatisfy { $0.tables[0].capacity <= 64 })
        // A truthful hint sizes every shard's table once for its share.
        let loaded = Keyspace(databases: 16, shards: 4)
        loaded.reserve(database: 0, keys: 4_000)
        #expect(loaded.shards.allSatisfy { $0.tables[0].capacity >= 1_001 })
    }

    @Test func saveRulesNeedBothTimeAndChanges() throws {
        let saver = try harness(settings(savePoints: [SavePoint(seconds: 300, changes: 100)]))
        let engine = saver.commands.engine
        engine.addChanges(150)
        saver.persistence.tick()
        #expect(saver.jobs.count == 0)
        #expect(saver.disk.contents(of: "dump.rdb") == nil)
        saver.clock.advance(by: 301_000)
        saver.persistence.tick()
        #expect(saver.jobs.runNext())
        #expect(saver.disk.contents(of: "dump.rdb") != nil)
        #expect(engine.changesSinceLastSave == 0)
    }
}

@Suite struct FunctionPersistenceTests {
    @Test func librariesSurviveARestartThroughTheRDB() throws {
        let disk = SimulatedDisk()
        var settings = PersistenceSettings()
        settings.directory = "."
        let saver = PersistenceHarness(settings: settings, disk: disk)
        try saver.start()
        let code = "#!lua name=lib\nredis.register_function('hello', function() return 'hi' end)"
        #expect(saver.run("FUNCTION", "LOAD", code) == "$3\r\nlib\r\n")
        #expect(saver.persistence.startBackgroundSave(schedule: false, deferred: false) == .started)
        #expect(saver.jobs.runNext())
        #expect(disk.contents(of: "dump.rdb")?.contains(245) == true)
        let restored = PersistenceHarness(settings: settings, disk: disk, clock: saver.clock)
        try restored.start()
        #expect(restored.run("FCALL", "hello", "0") == "$2\r\nhi\r\n")
    }
}
