// RDBSnapshotTests: SnapshotController SAVE/BGSAVE, save rules and MISCONF, saved and loaded on SimulatedDisk.
import Glibc
import Testing
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

@Suite struct RDBSnapshotTests {
    func makeEngine(_ clock: ManualClock) -> CommandEngine {
        CommandEngine(configuration: EngineConfiguration(), clock: clock, serverCommands: [])
    }

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

    @Test func backgroundSaveRoundTripsThroughSimulatedDisk() throws {
        let clock = ManualClock()
        let disk = SimulatedDisk()
        try disk.makeDirectory("data")
        let controller = SnapshotController(storage: disk, settings: SnapshotSettings(directory: "data"), clock: clock)
        let engine = makeEngine(clock)
        populate(engine, count: 500, now: clock.nowMilliseconds())
        engine.addChanges(501)
        #expect(controller.startBackgroundSave(engine: engine) == .started)
        controller.waitForBackgroundSave()
        #expect(controller.lastSaveSucceeded)
        #expect(engine.changesSinceLastSave == 0)
        #expect(try disk.listDirectory("data") == ["dump.rdb"])
        // The saved file survives a power cut (it was fsynced and its directory too).
        disk.powerCut(seed: 3)
        let restored = makeEngine(clock)
        let result = try #require(try controller.load(into: restored))
        #expect(result.keysLoaded == 501)
        #expect(restored.keyspace.count(database: 0) == 168)
        #expect(restored.keyspace.count(database: 1) == 167)
        var info = ""
        controller.writeInfo(into: &info, engine: restored)
        #expect(info.contains("rdb_last_bgsave_status:ok\r\n"))
        #expect(info.contains("rdb_bgsave_in_progress:0\r\n"))
    }

    @Test func failedSaveRefusesWritesUntilASaveSucceeds() throws {
        let clock = ManualClock()
        let disk = SimulatedDisk()
        try disk.makeDirectory("data")
        disk.install("data/dump.rdb", Array("old".utf8))
        var settings = SnapshotSettings(directory: "data")
        settings.savePoints = [SavePoint(seconds: 60, changes: 1)]
        let controller = SnapshotController(storage: disk, settings: settings, clock: clock)
        let engine = makeEngine(clock)
        populate(engine, count: 10, now: clock.nowMilliseconds())
        engine.addChanges(10)
        disk.setFailing(.fsync, errno: ENOSPC)
        // A failed SAVE answers -ERR but, as in Redis, does not turn on MISCONF; a failed BGSAVE does.
        #expect(!controller.save(engine: engine))
        #expect(controller.writeRefusal() == nil)
        #expect(controller.startBackgroundSave(engine: engine) == .started)
        controller.waitForBackgroundSave()
        #expect(controller.writeRefusal().map { String(decoding: $0, as: UTF8.self).hasPrefix("MISCONF ") } == true)
        #expect(disk.contents(of: "data/dump.rdb") == Array("old".utf8))
        #expect(try disk.listDirectory("data") == ["dump.rdb"])
        #expect(engine.changesSinceLastSave == 10)
        // The rule fires on the cron tick only after the retry delay.
        clock.advance(by: 61_000)
        disk.setFailing(.fsync, errno: nil)
        controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds())
        controller.waitForBackgroundSave()
        #expect(controller.lastSaveSucceeded)
        #expect(controller.writeRefusal() == nil)
        #expect(controller.lastSaveSeconds == clock.nowMilliseconds() / 1000)
        var info = ""
        controller.writeInfo(into: &info, engine: engine)
        #expect(info.contains("rdb_saves:3\r\n"))
    }

    @Test func backgroundSaveWaitsForAnotherBackgroundJob() throws {
        let clock = ManualClock()
        let disk = SimulatedDisk()
        var settings = SnapshotSettings(directory: ".")
        settings.savePoints = []
        let controller = SnapshotController(storage: disk, settings: settings, clock: clock)
        let engine = makeEngine(clock)
        populate(engine, count: 20, now: clock.nowMilliseconds())
        // An AOF rewrite holds the slot: plain BGSAVE is refused, SCHEDULE defers it.
        #expect(controller.beginOtherBackgroundJob())
        #expect(controller.startBackgroundSave(engine: engine) == .otherJobActive)
        #expect(controller.startBackgroundSave(engine: engine, schedule: true) == .scheduled)
        #expect(!controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds()))
        #expect(disk.contents(of: "dump.rdb") == nil)
        controller.endOtherBackgroundJob()
        #expect(controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds()))
        // While the save runs the slot cannot be claimed, so rewrites wait in turn.
        let claimedDuringSave = controller.isBackgroundSaveInProgress && controller.beginOtherBackgroundJob()
        controller.waitForBackgroundSave()
        #expect(!claimedDuringSave)
        #expect(disk.contents(of: "dump.rdb") != nil)
        #expect(controller.beginOtherBackgroundJob())
        controller.endOtherBackgroundJob()
        // Inside EXEC the save is always deferred to the cron.
        #expect(controller.startBackgroundSave(engine: engine, deferred: true) == .scheduled)
        #expect(controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds()))
        controller.waitForBackgroundSave()
        #expect(controller.lastSaveSucceeded)
    }

    @Test func emptyDumpFileIsAnError() throws {
        let clock = ManualClock()
        let disk = SimulatedDisk()
        disk.install("dump.rdb", [])
        let controller = SnapshotController(storage: disk, settings: SnapshotSettings(directory: "."), clock: clock)
        #expect(throws: RDBError.self) { try controller.load(into: makeEngine(clock)) }
        let missing = SnapshotController(storage: SimulatedDisk(), settings: SnapshotSettings(directory: "."),
                                         clock: clock)
        #expect(try missing.load(into: makeEngine(clock)) == nil)
    }

    @Test func saveRulesNeedBothTimeAndChanges() throws {
        let clock = ManualClock()
        let disk = SimulatedDisk()
        var settings = SnapshotSettings(directory: ".")
        settings.savePoints = [SavePoint(seconds: 300, changes: 100)]
        let controller = SnapshotController(storage: disk, settings: settings, clock: clock)
        let engine = makeEngine(clock)
        engine.addChanges(150)
        controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds())
        controller.waitForBackgroundSave()
        #expect(disk.contents(of: "dump.rdb") == nil)
        clock.advance(by: 301_000)
        controller.tick(engine: engine, nowMilliseconds: clock.nowMilliseconds())
        controller.waitForBackgroundSave()
        #expect(disk.contents(of: "dump.rdb") != nil)
        #expect(engine.changesSinceLastSave == 0)
    }
}
