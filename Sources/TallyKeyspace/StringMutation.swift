// StringMutation: in-place edits of a stored string's bytes (SETBIT, BITFIELD, PFADD), without copying it.

extension Shard {
    /// Edits the string at `key` in place, first creating it or zero-padding it to at least
    /// `minimumCount` bytes, as Redis's `lookupStringForBitCommand` does. `body` gets the bytes
    /// and returns its result plus whether it changed them; the key counts as changed (watchers
    /// touched) when it was created, grew or `body` changed it. The TTL is kept.
    ///
    /// The bytes are taken out of the table while `body` runs, so the array is uniquely
    /// referenced and SETBIT on a 512 MB bitmap writes one byte instead of copying the bitmap.
    /// An integer-encoded value becomes its decimal bytes (Redis reads it the same way).
    /// Throws `.wrongType` for a hash.
    public func mutateString<R>(
        _ database: Int, _ key: Key, now: Int64, minimumCount: Int,
        _ body: (inout [UInt8]) -> (result: R, changed: Bool)
    ) throws(KeyspaceError) -> (result: R, changed: Bool) {
        try mutateString(database, key, now: now, minimumCount: minimumCount) { bytes, _ in body(&bytes) }
    }

    /// `mutateString` whose `body` also learns whether the key existed (PFADD turns a new key
    /// into an empty HyperLogLog but refuses an existing empty string).
    public func mutateString<R>(
        _ database: Int, _ key: Key, now: Int64, minimumCount: Int,
        _ body: (inout [UInt8], _ existed: Bool) -> (result: R, changed: Bool)
    ) throws(KeyspaceError) -> (result: R, changed: Bool) {
        // Only the presence is looked up: a held `Entry` would keep a second reference to the
        // bytes and turn the first write into a copy of the whole string (and copying it out
        // costs a retain and a release besides).
        guard let index = presentIndex(database, key, now: now) else {
            var bytes = [UInt8](repeating: 0, count: minimumCount)
            let outcome = body(&bytes, false)
            store(database, key, Entry(value: bytes.count <= 20 ? .fromBytes(bytes) : .string(bytes)))
            return (outcome.result, true)
        }
        // Serializing a pending snapshot image reads the table; it does not move keys.
        markWritten()
        var bytes: [UInt8]
        var integer: Int64?
        // Move the value out of the table (leaving a placeholder) so `bytes` is the array's only
        // reference and mutates in place.
        let taken = tables[database].takeValue(at: index)
        switch taken {
        case .integer, .string: break
        case .hash, .list, .set, .sortedSet, .stream:
            tables[database].setValue(taken, at: index)
            throw .wrongType
        }
        switch consume taken {
        case .integer(let value):
            integer = value
            bytes = decimalBytes(value)
        case .string(let stored):
            bytes = stored
        case .hash, .list, .set, .sortedSet, .stream:
            preconditionFailure("checked above")
        }
        let previousEstimate = integer == nil ? MemoryEstimate.bytes(ofStringCount: bytes.count) : 0
        let grew = bytes.count < minimumCount
        if grew { bytes.append(contentsOf: repeatElement(0, count: minimumCount - bytes.count)) }
        let outcome = body(&bytes, true)
        let changed = grew || outcome.changed
        let value: Value
        if let integer, !changed {
            value = .integer(integer)
        } else if changed && bytes.count <= 20 {
            // A short result may read as a canonical integer: keep the one representation for it.
            value = .fromBytes(bytes)
        } else {
            // Moved, not copied: a copy is a retain here and a release when `bytes` goes.
            value = .string(consume bytes)
        }
        account(MemoryEstimate.bytes(of: value) - previousEstimate)
        tables[database].restoreTaken(value, at: index)
        if changed { touch(database, key) }
        return (outcome.result, changed)
    }
}
