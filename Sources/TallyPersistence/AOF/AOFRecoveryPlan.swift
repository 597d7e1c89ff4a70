// AOFRecoveryPlan: the table that decides what start-up does with each damaged or healthy AOF file.

/// What the loader found in one file listed in the manifest.
public enum AOFFileCondition: Equatable, Sendable {
    /// Every record is complete.
    case intact
    /// The file ends inside a record; `validUpTo` is the end of the last complete record.
    case truncated(validUpTo: Int64)
    /// The file ends inside MULTI..EXEC; `validBeforeMulti` is where the MULTI started.
    case incompleteTransaction(validBeforeMulti: Int64)
    /// A byte at `offset` cannot belong to a record (corruption in the middle).
    case corrupt(offset: Int64)
    /// Tally's CRC64 marks found damage before a good mark; `offset` is the first byte that
    /// could not be verified (AOFMarks.swift).
    case checksumMismatch(offset: Int64, detail: String)
    /// The RDB part of a base file could not be read.
    case corruptRDB(reason: String)
    /// A replayed command was rejected (unknown command...) at `offset`.
    case rejectedCommand(offset: Int64, reason: String)
    /// The file is listed in the manifest but absent.
    case missing
    /// Opening or reading failed.
    case unreadable(reason: String)
}

/// The decision for one file.
public enum AOFRecoveryAction: Equatable, Sendable {
    /// Use the file as it is.
    case load
    /// Use the records before `at` and cut the file there (only ever the last file).
    case truncateTail(at: Int64)
    /// Refuse to start; the file is left exactly as found.
    case refuse(file: String, offset: Int64, reason: String)
}

/// Maps (condition, is-last-file, `aof-load-truncated`) to an action; every row is a case below.
///
/// | condition              | last file | aof-load-truncated | action                          |
/// |------------------------|-----------|--------------------|---------------------------------|
/// | intact                 | any       | any                | load                            |
/// | truncated / open MULTI | yes       | yes                | truncateTail(last good record)  |
/// | truncated / open MULTI | yes       | no                 | refuse (unexpected end of file) |
/// | truncated / open MULTI | no        | any                | refuse (not the last file)      |
/// | corrupt                | any       | any                | refuse at the bad byte          |
/// | checksum mismatch      | any       | any                | refuse at the first bad byte    |
/// | corrupt RDB base       | any       | any                | refuse at 0                     |
/// | rejected command       | any       | any                | refuse at the record            |
/// | missing                | any       | any                | refuse at 0                     |
/// | unreadable             | any       | any                | refuse at 0                     |
///
/// Redis truncates a file before finding out it was not the last one; Tally decides first, so a
/// refused start never modifies the evidence.
public enum AOFRecoveryPlan {
    /// The action for `file` in `condition`.
    public static func action(
        file: String, condition: AOFFileCondition, isLastFile: Bool, loadTruncated: Bool
    ) -> AOFRecoveryAction {
        switch condition {
        case .intact:
            return .load
        case .truncated(let validUpTo), .incompleteTransaction(let validUpTo):
            guard isLastFile else {
                return .refuse(
                    file: file, offset: validUpTo,
                    reason: "Fatal error: the truncated file is not the last file")
            }
            guard loadTruncated else {
                return .refuse(
                    file: file, offset: validUpTo,
                    reason: "Unexpected end of file reading the append only file \(file). You can: "
                        + "1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. "
                        + "2) Alternatively you can set the 'aof-load-truncated' configuration option to yes "
                        + "and restart the server.")
            }
            return .truncateTail(at: validUpTo)
        case .corrupt(let offset):
            return .refuse(
                file: file, offset: offset,
                reason: "Bad file format reading the append only file \(file): make a backup of your AOF file, "
                    + "then use ./redis-check-aof --fix <filename.manifest>")
        case .checksumMismatch(let offset, let detail):
            return .refuse(
                file: file, offset: offset,
                reason: "Bad file format reading the append only file \(file): the AOF integrity marks show "
                    + "corruption at offset \(offset) (\(detail)). Nothing was modified: make a backup of your "
                    + "AOF directory, then inspect it with tally-check-aof <filename.manifest>")
        case .corruptRDB(let reason):
            return .refuse(
                file: file, offset: 0,
                reason: "Error reading the RDB base file \(file), AOF loading aborted: \(reason)")
        case .rejectedCommand(let offset, let reason):
            return .refuse(file: file, offset: offset, reason: reason)
        case .missing:
            return .refuse(file: file, offset: 0, reason: "The append log file \(file) doesn't exist")
        case .unreadable(let reason):
            return .refuse(
                file: file, offset: 0,
                reason: "Fatal error: can't open the append log file \(file) for reading: \(reason)")
        }
    }
}
