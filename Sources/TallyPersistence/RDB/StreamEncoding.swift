// StreamEncoding: RDB_TYPE_STREAM_LISTPACKS_2 (19), the stream layout of Redis 7.0's rdbSaveObject.
import TallyKeyspace

extension RDBFormat.ValueType {
    /// Streams with first id, max deleted id, entries added and per-group entries read (7.0).
    public static let streamListpacks2: UInt8 = 19
    /// Streams as Redis 5-6.2 wrote them (no 7.0 counters).
    public static let streamListpacks: UInt8 = 15
}

extension RDBWriter {
    /// The body of a stream value (after type and key):
    ///
    /// ```
    /// node count, per node: 16-byte big-endian master id (string), listpack (string)
    /// length, last id (ms, seq), first id, max deleted id, entries added   (lengths)
    /// group count, per group: name, last id, entries read, PEL, consumers
    ///   PEL:       count, per entry: 16 raw id bytes, delivery time (8 bytes LE), delivery count
    ///   consumers: count, per consumer: name, seen time (8 bytes LE), count + 16 raw id bytes each
    /// ```
    static func appendStream(_ stream: StreamValue, options: RDBWriterOptions, into scratch: inout [UInt8]) {
        encodeLength(UInt64(stream.nodes.count), into: &scratch)
        for node in stream.nodes {
            encodeString(node.master.bigEndianBytes, options: options, into: &scratch)
            encodeString(Listpack.wrap(entries: node.listpackEntries, count: node.listpackElementCount),
                         options: options, into: &scratch)
        }
        encodeLength(UInt64(stream.length), into: &scratch)
        for id in [stream.lastID, stream.firstID, stream.maxDeletedID] {
            encodeLength(id.ms, into: &scratch)
            encodeLength(id.seq, into: &scratch)
        }
        encodeLength(UInt64(bitPattern: stream.entriesAdded), into: &scratch)
        encodeLength(UInt64(stream.groups.count), into: &scratch)
        for group in stream.groups {
            encodeString(group.name, options: options, into: &scratch)
            encodeLength(group.lastID.ms, into: &scratch)
            encodeLength(group.lastID.seq, into: &scratch)
            encodeLength(UInt64(bitPattern: group.entriesRead), into: &scratch)
            encodeLength(UInt64(group.pendingIDs.count), into: &scratch)
            for (index, id) in group.pendingIDs.enumerated() {
                scratch.append(contentsOf: id.bigEndianBytes)
                let entry = group.pendingEntries[index]
                Listpack.appendLittleEndian(UInt64(bitPattern: entry.deliveryTime), bytes: 8, to: &scratch)
                encodeLength(UInt64(bitPattern: entry.deliveryCount), into: &scratch)
            }
            encodeLength(UInt64(group.consumers.count), into: &scratch)
            for consumer in group.consumers {
                encodeString(consumer.name, options: options, into: &scratch)
                Listpack.appendLittleEndian(UInt64(bitPattern: consumer.seenTime), bytes: 8, to: &scratch)
                encodeLength(UInt64(consumer.pending.count), into: &scratch)
                for id in consumer.pending { scratch.append(contentsOf: id.bigEndianBytes) }
            }
        }
    }
}
