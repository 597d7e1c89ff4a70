// InlineSplitter: splits an inline request line into arguments with the rules of Redis's sdssplitargs.

/// Splits `line` like `sdssplitargs`: whitespace separates arguments; "double quotes" support
/// `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<char>` escapes; 'single quotes' support `\'`.
/// A closing quote must be followed by whitespace or the end of the line. Like the C version,
/// a NUL byte ends the line. Returns false on unbalanced quotes (arguments are then partial).
public func splitInlineArguments(_ line: ArraySlice<UInt8>, into arguments: inout CommandArguments) -> Bool {
    var end = line.endIndex
    if let nul = line.firstIndex(of: 0) { end = nul }
    var index = line.startIndex
    var token: [UInt8] = []

    @inline(__always) func byte(at position: Int) -> UInt8 { position < end ? line[position] : 0 }
    @inline(__always) func isSpace(_ value: UInt8) -> Bool {
        value == 32 || (value >= 9 && value <= 13)
    }
    @inline(__always) func hexValue(_ value: UInt8) -> UInt8? {
        switch value {
        case 48...57: return value - 48
        case 97...102: return value - 87
        case 65...70: return value - 55
        default: return nil
        }
    }

    while true {
        while index < end && isSpace(line[index]) { index += 1 }
        if index >= end { return true }
        var inDoubleQuotes = false
        var inSingleQuotes = false
        var done = false
        token.removeAll(keepingCapacity: true)
        while !done {
            let current = byte(at: index)
            if inDoubleQuotes {
                if current == UInt8(ascii: "\\") && byte(at: index + 1) == UInt8(ascii: "x"),
                    let high = hexValue(byte(at: index + 2)), let low = hexValue(byte(at: index + 3))
                {
                    token.append(high << 4 | low)
                    index += 3
                } else if current == UInt8(ascii: "\\") && byte(at: index + 1) != 0 {
                    index += 1
                    switch byte(at: index) {
                    case UInt8(ascii: "n"): token.append(10)
                    case UInt8(ascii: "r"): token.append(13)
                    case UInt8(ascii: "t"): token.append(9)
                    case UInt8(ascii: "b"): token.append(8)
                    case UInt8(ascii: "a"): token.append(7)
                    default: token.append(byte(at: index))
                    }
                } else if current == UInt8(ascii: "\"") {
                    let following = byte(at: index + 1)
                    if following != 0 && !isSpace(following) { return false }
                    done = true
                } else if current == 0 {
                    return false
                } else {
                    token.append(current)
                }
            } else if inSingleQuotes {
                if current == UInt8(ascii: "\\") && byte(at: index + 1) == UInt8(ascii: "'") {
                    index += 1
                    token.append(UInt8(ascii: "'"))
                } else if current == UInt8(ascii: "'") {
                    let following = byte(at: index + 1)
                    if following != 0 && !isSpace(following) { return false }
                    done = true
                } else if current == 0 {
                    return false
                } else {
                    token.append(current)
                }
            } else {
                switch current {
                case 32, 10, 13, 9, 0: done = true
                case UInt8(ascii: "\""): inDoubleQuotes = true
                case UInt8(ascii: "'"): inSingleQuotes = true
                default: token.append(current)
                }
            }
            if index < end { index += 1 }
        }
        arguments.append(token)
    }
}
