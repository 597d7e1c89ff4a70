// StorageTests: CRC64, sinks, PosixStorage, atomic replace, and SimulatedDisk power cuts and faults.
import Glibc
import Testing
import TallyPersistence
import TallyTestSupport

@Suite struct StorageTests {
    @Test func crc64MatchesRedisVector() {
        #expect(CRC64.checksum(Array("123456789".utf8)) == 0xe9c6_d914_c4b8_d9ca)
        #expect(CRC64.checksum([UInt8]()) == 0)
    }

    @Test func crc64IsIncrementalAndMatchesBitwiseReference() {
        var generator = SplitMix64(seed: 7)
        let bytes = (0..<1000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        // Bit-at-a-time reference straight from the definition (reflected, poly 0xad93d23594c935a9).
        var reference: UInt64 = 0
        for byte in bytes {
            reference ^= UInt64(byte)
            for _ in 0..<8 {
                reference = (reference & 1) != 0 ? (reference >> 1) ^ 0x95ac_9329_ac4b_c9b5 : reference >> 1
            }
        }
        #expect(CRC64.checksum(bytes) == reference)
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            var crc = CRC64()
            bytes[..<split].withUnsafeBytes { crc.update($0) }
            bytes[split...].withUnsafeBytes { crc.update($0) }
            #expect(crc.value == reference, "split at \(split)")
        }
    }

    @Test func checksummingSinkPassesBytesThrough() throws {
        var sink = ChecksummingSink(MemorySink())
        try sink.write(Array("12345".utf8))
        try sink.write(Array("6789".utf8))
        #expect(sink.checksum == 0xe9c6_d914_c4b8_d9ca)
        #expect(sink.base.bytes == Array("123456789".utf8))
    }

    @Test func storageSinkBuffersAndWritesEverything() throws {
        let disk = SimulatedDisk()
        let file = try disk.create("f")
        var sink = StorageSink(storage: disk, file: file, bufferBytes: 16)
        var expected: [UInt8] = []
        for size in [3, 10, 40, 1, 15, 16, 17] {
            let chunk = (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ size) }
            expected += chunk
            try sink.write(chunk)
        }
        try sink.synchronize()
        #expect(disk.contents(of: "f") == expected)
        #expect(sink.bytesWritten == Int64(expected.count))
    }

    @Test func storageSinkSurvivesShortWrites() throws {
        let disk = SimulatedDisk()
        disk.setShortWrites(maxBytes: 3)
        let file = try disk.create("f")
        var sink = StorageSink(storage: disk, file: file, bufferBytes: 64)
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        try sink.write(data)
        try sink.synchronize()
        #expect(disk.contents(of: "f") == data)
        #expect(disk.callCount(.write) >= 334)
    }

    @Test func posixStorageRoundTrip() throws {
        let storage = PosixStorage()
        let directory = "/tmp/tally-storage-test-\(getpid())"
        try storage.makeDirectory(directory)
        try storage.makeDirectory(directory)  // idempotent
        let path = directory + "/a.bin"
        let file = try storage.create(path)
        try Array("hello world".utf8).withUnsafeBytes { try writeAll(storage, file, $0) }
        try storage.fsync(file)
        #expect(try storage.size(file) == 11)
        try storage.truncate(file, to: 5)
        storage.close(file)
        let appender = try storage.openForAppend(path)
        _ = try Array("!".utf8).withUnsafeBytes { try storage.write(appender, $0) }
        storage.close(appender)
        let reader = try storage.openForReading(path)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try buffer.withUnsafeMutableBytes { try storage.read(reader, into: $0) }
        storage.close(reader)
        #expect(Array(buffer[..<count]) == Array("hello!".utf8))
        try storage.rename(path, to: directory + "/b.bin")
        try storage.fsyncDirectory(directory)
        #expect(try storage.listDirectory(directory) == ["b.bin"])
        #expect(!storage.exists(path))
        try storage.remove(directory + "/b.bin")
        #expect(throws: StorageError.self) { try storage.openForReading(path) }
        let missing = #expect(throws: StorageError.self) { _ = try storage.openForReading(path) }
        #expect(missing?.code == ENOENT)
        #expect(missing?.description.contains("No such file") == true)
        rmdir(directory)
    }

    @Test func posixAtomicReplaceWritesAndLeavesNoTemp() throws {
        let storage = PosixStorage()
        let directory = "/tmp/tally-atomic-test-\(getpid())"
        try storage.makeDirectory(directory)
        try atomicReplace(storage, directory: directory, name: "dump.rdb") { sink in try sink.write(Array("one".utf8)) }
        try atomicReplace(storage, directory: directory, name: "dump.rdb") { sink in try sink.write(Array("two".utf8)) }
        #expect(try storage.listDirectory(directory) == ["dump.rdb"])
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try atomicReplace(storage, directory: directory, name: "dump.rdb") { sink in
                try sink.write(Array("partial".utf8))
                throw Boom()
            }
        }
        #expect(try storage.listDirectory(directory) == ["dump.rdb"])
        let reader = try storage.openForReading(directory + "/dump.rdb")
        var buffer = [UInt8](repeating: 0, count: 16)
        let count = try buffer.withUnsafeMutableBytes { try storage.read(reader, into: $0) }
        storage.close(reader)
        #expect(Array(buffer[..<count]) == Array("two".utf8))
        try storage.remove(directory + "/dump.rdb")
        rmdir(directory)
    }

    @Test func temporaryNamesFollowRedisPattern() {
        let name = temporaryFileName(for: "dump.rdb")
        #expect(name.hasPrefix("temp-\(getpid())-"))
        #expect(name.hasSuffix(".rdb"))
        #expect(temporaryFileName(for: "dump.rdb") != name)
    }

    @Test func powerCutDropsUnsyncedBytesAndUnsyncedNames() throws {
        let disk = SimulatedDisk()
        disk.installDirectory("d")
        let file = try disk.create("d/a")
        _ = try Array("durable".utf8).withUnsafeBytes { try disk.write(file, $0) }
        try disk.fsync(file)
        // The data is durable but the name is not: the directory was never fsynced.
        disk.powerCut(seed: 1)
        #expect(disk.contents(of: "d/a") == nil)

        let second = try disk.create("d/b")
        _ = try Array("synced".utf8).withUnsafeBytes { try disk.write(second, $0) }
        try disk.fsync(second)
        try disk.fsyncDirectory("d")
        _ = try Array(" and more".utf8).withUnsafeBytes { try disk.write(second, $0) }
        try disk.rename("d/b", to: "d/c")
        disk.powerCut(seed: 2)
        // The rename was not made durable; the unsynced tail may be torn anywhere.
        #expect(disk.contents(of: "d/c") == nil)
        let survived = try #require(disk.contents(of: "d/b"))
        #expect(survived.starts(with: Array("synced".utf8)))
        #expect(Array("synced and more".utf8).starts(with: survived))
    }

    @Test func powerCutTearsAtSeededOffsets() throws {
        var lengths = Set<Int>()
        for seed in UInt64(0)..<64 {
            let disk = SimulatedDisk()
            disk.install("f", Array("base".utf8))
            let file = try disk.openForAppend("f")
            _ = try [UInt8](repeating: 7, count: 10).withUnsafeBytes { try disk.write(file, $0) }
            disk.powerCut(seed: seed)
            let length = try #require(disk.contents(of: "f")).count
            #expect((4...14).contains(length))
            lengths.insert(length)
            // Same seed, same outcome.
            let again = SimulatedDisk()
            again.install("f", Array("base".utf8))
            let file2 = try again.openForAppend("f")
            _ = try [UInt8](repeating: 7, count: 10).withUnsafeBytes { try again.write(file2, $0) }
            again.powerCut(seed: seed)
            #expect(again.contents(of: "f")?.count == length)
        }
        #expect(lengths.count > 5)
    }

    @Test func injectedFaultsFireOnTheNthCall() throws {
        let disk = SimulatedDisk()
        let file = try disk.create("f")
        disk.failNext(.write, after: 2, errno: ENOSPC)
        let byte: [UInt8] = [1]
        for _ in 0..<2 { _ = try byte.withUnsafeBytes { try disk.write(file, $0) } }
        let error = #expect(throws: StorageError.self) { _ = try byte.withUnsafeBytes { try disk.write(file, $0) } }
        #expect(error?.code == ENOSPC)
        #expect(error?.operation == "write")
        _ = try byte.withUnsafeBytes { try disk.write(file, $0) }
        disk.setFailing(.fsync, errno: EIO)
        #expect(throws: StorageError.self) { try disk.fsync(file) }
        #expect(throws: StorageError.self) { try disk.fsync(file) }
        disk.setFailing(.fsync, errno: nil)
        try disk.fsync(file)
        #expect(disk.contents(of: "f") == [1, 1, 1])
    }

    /// A power cut at any step of an atomic replacement leaves the old file or the whole new file.
    @Test func atomicReplaceNeverExposesAMixture() throws {
        let old = Array("old contents".utf8)
        let new = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let operations: [DiskOperation] = [.create, .write, .fsync, .rename, .fsyncDirectory]
        // Crash after the replacement's k-th storage call, for every k, with several tear seeds.
        for failing in operations {
            for after in 0..<4 {
                for seed in UInt64(0)..<4 {
                    let disk = SimulatedDisk()
                    disk.installDirectory("data")
                    disk.install("data/dump.rdb", old)
                    disk.setShortWrites(maxBytes: 1500)
                    disk.failNext(failing, after: after, errno: EIO)
                    let completed: Bool
                    do {
                        try atomicReplace(disk, directory: "data", name: "dump.rdb") { sink in try sink.write(new) }
                        completed = true
                    } catch {
                        completed = false
                    }
                    let visible = disk.contents(of: "data/dump.rdb")
                    #expect(visible == old || visible == new)
                    if !completed { #expect(try disk.listDirectory("data") == ["dump.rdb"]) }
                    disk.powerCut(seed: seed)
                    let after = disk.contents(of: "data/dump.rdb")
                    #expect(after == old || after == new, "fault \(failing) seed \(seed)")
                    if completed { #expect(after == new) }
                }
            }
        }
    }
}
