// SortCommand: SORT and SORT_RO (BY, LIMIT, GET, ASC/DESC, ALPHA, STORE) over lists and sets.
import Glibc
import TallyKeyspace
import TallyProtocol

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE dest]
/// and SORT_RO (no STORE), as sort.c sortCommandGeneric. Patterns may name any key, so SORT
/// takes every shard.
enum SortCommand {
    static var specs: [CommandSpec] {
        [
            command("sort", -2, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1),
                    "@write @set @sortedset @list @slow @dangerous") { context in
                sort(&context, readOnly: false)
            },
            command("sort_ro", -2, [.readonly, .movableKeys], keys: (1, 1, 1),
                    "@read @set @sortedset @list @slow @dangerous") { context in
                sort(&context, readOnly: true)
            },
        ]
    }

    /// The elements of the value to sort, and whether they have an order of their own that
    /// `BY nosort` keeps (lists; sorted sets by score) rather than an arbitrary one (sets);
    /// nil for a value SORT refuses (WRONGTYPE).
    static func sourceElements(_ value: Value) -> (elements: [[UInt8]], ordered: Bool)? {
        switch value {
        case .list(let list):
            var elements: [[UInt8]] = []
            elements.reserveCapacity(list.count)
            list.visit(from: 0) { _, element in
                elements.append(element.materialized)
                return true
            }
            return (elements, true)
        case .set(let set):
            return (set.members, false)
        case .sortedSet(let set):
            var elements: [[UInt8]] = []
            elements.reserveCapacity(set.count)
            set.forEach { member, _ in elements.append(Array(member)) }
            return (elements, true)
        case .integer, .string, .hash, .stream:
            return nil
        }
    }

    /// One element being sorted: its bytes and its weight (a score, or the BY value for ALPHA).
    struct Item {
        var element: [UInt8]
        var score: Double = 0
        var weight: [UInt8]?
    }

    static func sort(_ context: inout CommandContext, readOnly: Bool) {
        let arguments = context.arguments
        var descending = false
        var alpha = false
        var limitStart = 0
        var limitCount = -1
        var byPattern: ArraySlice<UInt8>?
        var dontSort = false
        var getPatterns: [ArraySlice<UInt8>] = []
        var storeKey: Key?
        var index = 2
        while index < arguments.count {
            let left = arguments.count - index - 1
            if arguments.matches(index, "asc") {
                descending = false
            } else if arguments.matches(index, "desc") {
                descending = true
            } else if arguments.matches(index, "alpha") {
                alpha = true
            } else if arguments.matches(index, "limit") && left >= 2 {
                guard let start = context.integerArgument(index + 1),
                      let count = context.integerArgument(index + 2) else { return }
                limitStart = Int(start)
                limitCount = Int(count)
                index += 2
            } else if !readOnly && arguments.matches(index, "store") && left >= 1 {
                storeKey = context.key(index + 1)
                index += 1
            } else if arguments.matches(index, "by") && left >= 1 {
                byPattern = arguments[index + 1]
                dontSort = !arguments[index + 1].contains(UInt8(ascii: "*"))
                index += 1
            } else if arguments.matches(index, "get") && left >= 1 {
                getPatterns.append(arguments[index + 1])
                index += 1
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        context.lockAllShards()
        let database = context.database
        var items: [Item] = []
        var ordered = false
        let sourceKey = context.key(1)
        if let entry = context.keyspace.shard(for: sourceKey).lookupRead(database, sourceKey, now: context.now) {
            guard let source = sourceElements(entry.value) else {
                return context.output.writeError(RedisError.wrongType)
            }
            items = source.elements.map { Item(element: $0) }
            ordered = source.ordered
            // sort.c converts a listpack sorted set to a skiplist, destructively: OBJECT ENCODING
            // says skiplist afterwards, and a later -0 score is kept as -0 (a listpack keeps 0).
            if case .sortedSet(let set) = entry.value, set.isCompact {
                _ = try? context.keyspace.shard(for: sourceKey).withSortedSet(
                    database, sourceKey, now: context.now, create: false) { set, _ in set.convertToIndexed() }
            }
        }
        // A set has no order of its own: stored (or scripted) results are sorted anyway, so
        // replicas and the AOF agree.
        if dontSort && !ordered && (storeKey != nil || context.session.isScriptCall) && !items.isEmpty {
            dontSort = false
            alpha = true
            byPattern = nil
        }
        let total = items.count
        var start = min(max(limitStart, 0), total)
        let count = min(max(limitCount, -1), total)
        var end = count < 0 ? total - 1 : start + count - 1
        if start >= total {
            start = total - 1
            end = total - 2
        }
        if end >= total { end = total - 1 }
        if ordered && dontSort {
            // BY nosort on a list keeps its order (reversed from the tail for DESC), limited
            // to the requested range.
            if end >= start {
                let range = descending ? (total - 1 - end)...(total - 1 - start) : start...end
                items = descending ? Array(items[range].reversed()) : Array(items[range])
                end -= start
                start = 0
            } else {
                items = []
            }
        }
        if !dontSort {
            var conversionError = false
            for position in items.indices {
                let byValue: [UInt8]?
                if let byPattern {
                    byValue = lookup(&context, pattern: byPattern, element: items[position].element)
                    if byValue == nil { continue }
                } else {
                    byValue = items[position].element
                }
                if alpha {
                    if byPattern != nil { items[position].weight = byValue }
                } else if let byValue {
                    if let score = parseScore(byValue) { items[position].score = score } else { conversionError = true }
                }
            }
            if conversionError {
                return context.output.writeError("ERR One or more scores can't be converted into double")
            }
            let byPatternGiven = byPattern != nil
            let collate = storeKey == nil
            // Swift's sort is stable, as glibc's qsort (a merge sort) is for Redis's ties.
            items.sort { left, right in
                let order = compare(left, right, alpha: alpha, byPattern: byPatternGiven, collate: collate)
                return descending ? order > 0 : order < 0
            }
        }
        let selected = end >= start ? Array(items[start...end]) : []
        let outputCount = getPatterns.isEmpty ? selected.count : selected.count * getPatterns.count
        guard let storeKey else {
            context.output.writeArrayHeader(outputCount)
            for item in selected {
                if getPatterns.isEmpty { context.output.writeBulkString(item.element) }
                for pattern in getPatterns {
                    if let value = lookup(&context, pattern: pattern, element: item.element) {
                        context.output.writeBulkString(value)
                    } else {
                        context.output.writeNull()
                    }
                }
            }
            return
        }
        var stored: [[UInt8]] = []
        stored.reserveCapacity(outputCount)
        for item in selected {
            if getPatterns.isEmpty { stored.append(item.element) }
            for pattern in getPatterns {
                stored.append(lookup(&context, pattern: pattern, element: item.element) ?? [])
            }
        }
        let shard = context.keyspace.shard(for: storeKey)
        if outputCount > 0 {
            shard.store(database, storeKey, Entry(value: .list(ListValue(stored))))
            context.addChanges(Int64(outputCount))
            context.notify(.list, "sortstore", storeKey)
        } else if shard.lookup(database, storeKey, now: context.now) != nil {
            shard.remove(database, storeKey)
            context.addChanges(1)
            context.notify(.generic, "del", storeKey)
        }
        context.output.writeInteger(outputCount)
    }

    /// sortCompare: numeric scores (ties broken by the elements' bytes), or ALPHA on the BY
    /// values (a missing one first) or the elements. ALPHA without STORE collates as strcoll
    /// does in the C locale Redis runs under (`collate`: the text up to a NUL byte), with STORE
    /// it compares all the bytes (compareStringObjects).
    static func compare(_ left: Item, _ right: Item, alpha: Bool, byPattern: Bool, collate: Bool) -> Int {
        if !alpha {
            if left.score > right.score { return 1 }
            if left.score < right.score { return -1 }
            return compareBytes(left.element, right.element)
        }
        let order = collate ? compareCStrings : compareBytes
        if byPattern {
            switch (left.weight, right.weight) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case (let first?, let second?): return order(first, second)
            }
        }
        return order(left.element, right.element)
    }

    /// strcmp: byte order of the texts up to their first NUL byte.
    static func compareCStrings(_ left: [UInt8], _ right: [UInt8]) -> Int {
        var index = 0
        while true {
            let first = index < left.count ? left[index] : 0
            let second = index < right.count ? right[index] : 0
            if first != second { return first < second ? -1 : 1 }
            if first == 0 { return 0 }
            index += 1
        }
    }

    /// Byte order, a shorter prefix first (memcmp, then length).
    static func compareBytes(_ left: [UInt8], _ right: [UInt8]) -> Int {
        for (first, second) in zip(left, right) where first != second { return first < second ? -1 : 1 }
        return left.count == right.count ? 0 : (left.count < right.count ? -1 : 1)
    }

    /// A weight as strtod reads it in sort.c: the whole (NUL-terminated) text must parse, out
    /// of range and NaN are refused. An empty text is 0.
    static func parseScore(_ bytes: [UInt8]) -> Double? {
        var text = bytes
        text.append(0)
        return text.withUnsafeBufferPointer { buffer -> Double? in
            let start = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var end: UnsafeMutablePointer<CChar>?
            errno = 0
            let value = strtod(start, &end)
            guard let end, end.pointee == 0, errno != ERANGE, !value.isNaN else { return nil }
            return value
        }
    }

    /// lookupKeyByPattern: `#` is the element itself; otherwise the first `*` is replaced by the
    /// element and the key read (a string, or with `->field` a hash field). Nil when the
    /// pattern has no `*`, the key is missing or holds another kind of value.
    static func lookup(_ context: inout CommandContext, pattern: ArraySlice<UInt8>, element: [UInt8]) -> [UInt8]? {
        if pattern.count == 1 && pattern.first == UInt8(ascii: "#") { return element }
        guard let star = pattern.firstIndex(of: UInt8(ascii: "*")) else { return nil }
        var keyEnd = pattern.endIndex
        var field: ArraySlice<UInt8>?
        var search = star + 1
        while search + 1 < pattern.endIndex {
            if pattern[search] == UInt8(ascii: "-") && pattern[search + 1] == UInt8(ascii: ">") {
                if search + 2 < pattern.endIndex {
                    field = pattern[(search + 2)...]
                    keyEnd = search
                }
                break
            }
            search += 1
        }
        var name = Array(pattern[pattern.startIndex..<star])
        name.append(contentsOf: element)
        name.append(contentsOf: pattern[(star + 1)..<keyEnd])
        let key = Key(name)
        guard let entry = context.keyspace.shard(for: key).lookupRead(context.database, key, now: context.now)
        else { return nil }
        switch entry.value {
        case .integer(let value): return field == nil ? decimalBytes(value) : nil
        case .string(let bytes): return field == nil ? bytes : nil
        case .hash(let hash): return field.flatMap { hash.value(for: $0).map(Array.init) }
        default: return nil
        }
    }
}
