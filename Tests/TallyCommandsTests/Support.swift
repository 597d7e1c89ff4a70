// Support: a recording AppendLog for propagation tests.
import Synchronization
import TallyCommands
import TallyKeyspace

/// Records every appended batch as text ("SET k v|DEL x" per record, records joined by "; ").
final class RecordingLog: AppendLog {
    private let batches = Mutex<[String]>([])
    private let refusal = Mutex<[UInt8]?>(nil)

    func append(_ batch: borrowing PropagationBuffer) -> UInt64 {
        var records: [String] = []
        for record in batch.records {
            records.append("\(record.database):" + RecordingLog.decode(Array(batch.bytes[record.range])))
        }
        let text = records.joined(separator: "; ")
        return batches.withLock {
            $0.append(text)
            return UInt64($0.count)
        }
    }

    func writeRefusal() -> [UInt8]? { refusal.withLock { $0 } }
    func waitUntilDurable(_ offset: UInt64) {}

    func refuseWrites(_ message: String?) { refusal.withLock { $0 = message.map { Array($0.utf8) } } }

    var recorded: [String] { batches.withLock { $0 } }

    /// Forgets what was recorded so far (set-up writes).
    func clear() { batches.withLock { $0.removeAll() } }

    /// Turns one RESP array into space-separated words.
    static func decode(_ bytes: [UInt8]) -> String {
        var words: [String] = []
        var index = 0
        func line() -> String {
            var end = index
            while bytes[end] != 13 { end += 1 }
            let text = String(decoding: bytes[index..<end], as: UTF8.self)
            index = end + 2
            return text
        }
        let count = Int(line().dropFirst()) ?? 0
        for _ in 0..<count {
            let length = Int(line().dropFirst()) ?? 0
            words.append(String(decoding: bytes[index..<index + length], as: UTF8.self))
            index += length + 2
        }
        return words.joined(separator: " ")
    }
}
