// RDBFormat: opcodes, types, limits and errors of the RDB version 10 file format (Redis 7.0).

/// Constants of the RDB file format as Redis 7.0 writes it.
public enum RDBFormat {
    /// The version Tally writes (Redis 7.0.x).
    public static let version = 10
    /// The `redis-ver` aux field written, so tools treat the file like one from Redis 7.0.15.
    public static let compatibleRedisVersion = "7.0.15"

    /// Opcodes that may appear where a value type is expected.
    public enum Opcode {
        /// Function library (7.0 GA); Tally has no functions.
        public static let function2: UInt8 = 245
        /// Function (7.0 release candidates only).
        public static let function: UInt8 = 246
        /// Module aux data.
        public static let moduleAux: UInt8 = 247
        /// LRU idle time (a length) for the next key.
        public static let idle: UInt8 = 248
        /// LFU frequency (one byte) for the next key.
        public static let frequency: UInt8 = 249
        /// Aux field: two strings.
        public static let aux: UInt8 = 250
        /// Database size hints: two lengths.
        public static let resizeDatabase: UInt8 = 251
        /// Expiry of the next key, int64 little-endian Unix milliseconds.
        public static let expireTimeMilliseconds: UInt8 = 252
        /// Expiry of the next key, int32 little-endian Unix seconds (old files).
        public static let expireTime: UInt8 = 253
        /// Switch database: a length.
        public static let selectDatabase: UInt8 = 254
        /// End of file, followed by the 8-byte checksum (version 5 and later).
        public static let endOfFile: UInt8 = 255
    }

    /// Value types (the byte before each key).
    public enum ValueType {
        /// A string.
        public static let string: UInt8 = 0
        /// A list as a length and element strings (Redis before 3.2).
        public static let list: UInt8 = 1
        /// A list as a length and ziplist blobs (Redis 3.2 through 6.2).
        public static let listQuicklist: UInt8 = 14
        /// A list as a length and (container, blob) nodes: listpacks or plain elements (7.0).
        public static let listQuicklist2: UInt8 = 18
        /// A set as a length and member strings.
        public static let set: UInt8 = 2
        /// A set as an intset blob (all-integer sets of up to `set-max-intset-entries`).
        public static let setIntset: UInt8 = 11
        /// A hash as a length and field/value strings.
        public static let hash: UInt8 = 4
        /// A hash as a zipmap blob (Redis before 2.6).
        public static let hashZipmap: UInt8 = 9
        /// A hash as a ziplist blob (Redis 2.6 through 6.2).
        public static let hashZiplist: UInt8 = 13
        /// A hash as a listpack blob (Redis 7.0).
        public static let hashListpack: UInt8 = 16
        /// A sorted set as a length and member/score-text pairs (Redis before 2.8).
        public static let sortedSet: UInt8 = 3
        /// A sorted set as a length and member/binary-double pairs, highest score first.
        public static let sortedSet2: UInt8 = 5
        /// A sorted set as a ziplist blob (Redis 2.6 through 6.2).
        public static let sortedSetZiplist: UInt8 = 12
        /// A sorted set as a listpack blob of member, score pairs (Redis 7.0).
        public static let sortedSetListpack: UInt8 = 17
        /// Highest value type any Redis writes (7.2's listpack-quicklist streams etc.).
        public static let highestKnown: UInt8 = 21
    }

    /// Quicklist node containers in a QUICKLIST_2 value (quicklist.h QUICKLIST_NODE_CONTAINER_*).
    public enum ListContainer {
        /// One element stored as is (Redis: elements past its 1 GB packed threshold).
        public static let plain: UInt64 = 1
        /// A listpack.
        public static let packed: UInt64 = 2
    }

    /// Special string encodings (length bytes `11xxxxxx`).
    enum StringEncoding {
        static let int8: UInt8 = 0
        static let int16: UInt8 = 1
        static let int32: UInt8 = 2
        static let lzf: UInt8 = 3
    }
}

/// A failure to read an RDB file: what, in which file, at which byte offset.
public struct RDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Failure categories.
    public enum Kind: Sendable, Equatable {
        /// Not an RDB file (the magic is not "REDIS").
        case badMagic
        /// A version this reader does not accept.
        case badVersion
        /// The file ended early.
        case truncated
        /// The CRC64 trailer does not match the content.
        case badChecksum
        /// A byte that is neither an opcode nor a value type.
        case unknownOpcode
        /// A value type Tally does not store (lists, sets, zsets, streams, modules, functions).
        case unsupportedType
        /// A structurally invalid value (bad string encoding, broken listpack...).
        case corrupt
        /// The storage failed while reading.
        case io
    }

    /// The category.
    public let kind: Kind
    /// The file (or stream name) being read.
    public let file: String
    /// Byte offset in the file where the problem was found.
    public let offset: Int64
    /// Details.
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, file: String, offset: Int64, _ message: String) {
        self.kind = kind
        self.file = file
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(file): \(message) at offset \(offset)" }
}

/// Renders key bytes for an error message, escaping what is not printable ASCII.
func printableKey(_ bytes: [UInt8]) -> String {
    var text = "\""
    for byte in bytes.prefix(128) {
        if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let hex = Array("0123456789abcdef".utf8)
            text += "\\x"
            text.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
            text.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 15)]))
        }
    }
    if bytes.count > 128 { text += "..." }
    return text + "\""
}
