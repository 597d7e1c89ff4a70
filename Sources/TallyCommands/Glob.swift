// Glob: Redis's stringmatchlen pattern matching (KEYS, SCAN MATCH, CONFIG GET, COMMAND LIST), byte for byte.

/// True if `string` matches the glob `pattern` with Redis's rules (util.c stringmatchlen): `*`,
/// `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges allowed), and `\` escapes; an unterminated
/// `[` matches like a class that ends at the end of the pattern. `caseInsensitive` folds ASCII
/// letters as `nocase` does (CONFIG GET, COMMAND LIST FILTERBY PATTERN). The only glob matcher.
public func globMatches<P: Collection, S: Collection>(_ pattern: P, _ string: S, caseInsensitive: Bool = false)
    -> Bool where P.Element == UInt8, S.Element == UInt8
{
    var skipLongerMatches = false
    if caseInsensitive {
        return globMatch(pattern.map(foldASCII), 0, string.map(foldASCII)[...], &skipLongerMatches)
    }
    return globMatch(Array(pattern), 0, Array(string)[...], &skipLongerMatches)
}

@inline(__always)
private func foldASCII(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

private func globMatch(_ pattern: [UInt8], _ start: Int, _ text: ArraySlice<UInt8>,
                       _ skipLongerMatches: inout Bool) -> Bool {
    // Reads past the end return 0, standing in for C's terminating NUL.
    func at(_ index: Int) -> UInt8 { index < pattern.count ? pattern[index] : 0 }
    var p = start
    var s = text.startIndex
    while p < pattern.count && s < text.endIndex {
        switch pattern[p] {
        case UInt8(ascii: "*"):
            while p + 1 < pattern.count && pattern[p + 1] == UInt8(ascii: "*") { p += 1 }
            if p == pattern.count - 1 { return true }
            while s < text.endIndex {
                if globMatch(pattern, p + 1, text[s...], &skipLongerMatches) { return true }
                if skipLongerMatches { return false }
                s += 1
            }
            skipLongerMatches = true
            return false
        case UInt8(ascii: "?"):
            s += 1
        case UInt8(ascii: "["):
            p += 1
            let negate = at(p) == UInt8(ascii: "^")
            if negate { p += 1 }
            var matched = false
            let current = text[s]
            while true {
                if at(p) == UInt8(ascii: "\\") && pattern.count - p >= 2 {
                    p += 1
                    if pattern[p] == current { matched = true }
                } else if at(p) == UInt8(ascii: "]") {
                    break
                } else if p >= pattern.count {
                    p -= 1
                    break
                } else if pattern.count - p >= 3 && pattern[p + 1] == UInt8(ascii: "-") {
                    var low = pattern[p]
                    var high = pattern[p + 2]
                    if low > high { swap(&low, &high) }
                    p += 2
                    if current >= low && current <= high { matched = true }
                } else if pattern[p] == current {
                    matched = true
                }
                p += 1
            }
            if negate { matched = !matched }
            if !matched { return false }
            s += 1
        default:
            if pattern[p] == UInt8(ascii: "\\") && pattern.count - p >= 2 { p += 1 }
            if pattern[p] != text[s] { return false }
            s += 1
        }
        p += 1
        if s == text.endIndex {
            while at(p) == UInt8(ascii: "*") && p < pattern.count { p += 1 }
            break
        }
    }
    return p >= pattern.count && s == text.endIndex
}
