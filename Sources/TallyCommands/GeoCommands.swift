// GeoCommands: GEOADD, GEODIST, GEOHASH, GEOPOS, GEORADIUS*, GEOSEARCH[STORE] over sorted sets (geo.c).
import Glibc
import TallyKeyspace
import TallyProtocol

/// The geo family. A geo key is a plain sorted set whose scores are 52-bit geohashes
/// (GeoHash.swift), so TYPE, ZRANGE, persistence and DUMP need nothing of their own.
enum GeoCommands {
    static let memberNotFound: StaticString = "ERR could not decode requested zset member"
    static let unitError: StaticString = "ERR unsupported unit provided. please use M, KM, FT, MI"

    static var specs: [CommandSpec] {
        [
            command("geoadd", -5, [.write, .denyOOM], keys: (1, 1, 1), "@write @geo @slow", geoadd),
            command("geodist", -4, [.readonly], keys: (1, 1, 1), "@read @geo @slow", geodist),
            command("geohash", -2, [.readonly], keys: (1, 1, 1), "@read @geo @slow") { context in
                positions(&context, hashes: true)
            },
            command("geopos", -2, [.readonly], keys: (1, 1, 1), "@read @geo @slow") { context in
                positions(&context, hashes: false)
            },
            command("georadius", -6, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1), "@write @geo @slow") {
                context in
                search(&context, source: 1, mode: .radiusFromCoordinates, storeAllowed: true)
            },
            command("georadius_ro", -6, [.readonly], keys: (1, 1, 1), "@read @geo @slow") { context in
                search(&context, source: 1, mode: .radiusFromCoordinates, storeAllowed: false)
            },
            command("georadiusbymember", -5, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1),
                    "@write @geo @slow") { context in
                search(&context, source: 1, mode: .radiusFromMember, storeAllowed: true)
            },
            command("georadiusbymember_ro", -5, [.readonly], keys: (1, 1, 1), "@read @geo @slow") { context in
                search(&context, source: 1, mode: .radiusFromMember, storeAllowed: false)
            },
            command("geosearch", -7, [.readonly], keys: (1, 1, 1), "@read @geo @slow") { context in
                search(&context, source: 1, mode: .search, storeAllowed: false)
            },
            command("geosearchstore", -8, [.write, .denyOOM], keys: (1, 2, 1), "@write @geo @slow") { context in
                search(&context, source: 2, mode: .search, storeAllowed: true)
            },
        ]
    }

    // MARK: Argument parsing

    /// Meters per unit (extractUnitOrReply); nil after the error reply.
    static func unit(_ context: inout CommandContext, _ index: Int) -> Double? {
        let arguments = context.arguments
        if arguments.matches(index, "m") { return 1 }
        if arguments.matches(index, "km") { return 1000 }
        if arguments.matches(index, "ft") { return 0.3048 }
        if arguments.matches(index, "mi") { return 1609.34 }
        context.output.writeError(unitError)
        return nil
    }

    /// A double argument (getDoubleFromObjectOrReply); `message` replaces the default error.
    static func double(_ context: inout CommandContext, _ index: Int, message: StaticString = RedisError.notFloat)
        -> Double?
    {
        if let value = parseScore(context.arguments[index]) { return value }
        context.output.writeError(message)
        return nil
    }

    /// argv[index] and argv[index + 1] as a longitude, latitude pair inside Redis's limits
    /// (extractLongLatOrReply).
    static func coordinates(_ context: inout CommandContext, _ index: Int) -> (Double, Double)? {
        guard let longitude = double(&context, index), let latitude = double(&context, index + 1) else { return nil }
        if longitude < -GeoHash.longitudeLimit || longitude > GeoHash.longitudeLimit
            || latitude < -GeoHash.latitudeLimit || latitude > GeoHash.latitudeLimit {
            context.output.writeError(Array("ERR invalid longitude,latitude pair ".utf8)
                                      + cFormat("%f", longitude) + [UInt8(ascii: ",")] + cFormat("%f", latitude))
            return nil
        }
        return (longitude, latitude)
    }

    /// `printf(format, value)` for one double.
    static func cFormat(_ format: String, _ value: Double) -> [UInt8] {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 512) { buffer in
            let written = withVaList([value]) { vsnprintf(buffer.baseAddress, 512, format, $0) }
            return (0..<Int(min(written, 511))).map { UInt8(bitPattern: buffer[$0]) }
        }
    }

    // MARK: Reply formats

    /// A distance as Redis's addReplyDoubleDistance writes it: rounded (half to even) to four
    /// decimals, always as a bulk string.
    static func distanceText(_ distance: Double) -> [UInt8] {
        if distance == 0 { return Array("0.0000".utf8) }
        let scaled = (distance * 10000).rounded(.toNearestOrEven)
        guard scaled.magnitude < 9.2e18 else { return cFormat("%.4f", distance) }
        let fixed = Int64(scaled)
        var digits = Array(String(fixed.magnitude).utf8)
        while digits.count < 5 { digits.insert(UInt8(ascii: "0"), at: 0) }
        digits.insert(UInt8(ascii: "."), at: digits.count - 4)
        return fixed < 0 ? [UInt8(ascii: "-")] + digits : digits
    }

    /// A coordinate as addReplyHumanLongDouble writes it: `%.17Lf` with trailing zeros (and a
    /// bare point) dropped, a bulk string in RESP2 and a double in RESP3.
    static func writeCoordinate(_ value: Double, into output: inout OutputBuffer) {
        var text = cFormat("%.17f", value)
        if text.contains(UInt8(ascii: ".")) {
            while text.last == UInt8(ascii: "0") { text.removeLast() }
            if text.last == UInt8(ascii: ".") { text.removeLast() }
        }
        if text == Array("-0".utf8) { text = [UInt8(ascii: "0")] }
        output.writeDouble(formatted: text)
    }

    // MARK: GEOADD

    /// GEOADD key [NX|XX] [CH] longitude latitude member ...: every pair validated first, then
    /// applied as ZADD with the encoded scores, and logged as that ZADD (geoaddCommand).
    static func geoadd(_ context: inout CommandContext) {
        let arguments = context.arguments
        var nx = false, xx = false, ch = false
        var first = 2
        while first < arguments.count {
            if arguments.matches(first, "nx") { nx = true
            } else if arguments.matches(first, "xx") { xx = true
            } else if arguments.matches(first, "ch") { ch = true
            } else { break }
            first += 1
        }
        let elements = (arguments.count - first) / 3
        if (arguments.count - first) % 3 != 0 || (nx && xx) || elements == 0 {
            return context.output.writeError(RedisError.syntax)
        }
        var scores: [UInt64] = []
        scores.reserveCapacity(elements)
        for element in 0..<elements {
            guard let point = coordinates(&context, first + element * 3) else { return }
            scores.append(GeoHash.score(longitude: point.0, latitude: point.1))
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let limits = context.engine.sortedSetLimits
            do throws(KeyspaceError) {
                let (added, updated) = try shard.withSortedSet(context.database, key, now: context.now, create: !xx) {
                    set, changed in
                    var added = 0, updated = 0
                    for (element, bits) in scores.enumerated() {
                        let member = arguments[first + element * 3 + 2]
                        let score = Double(bits)
                        if let current = set.score(of: member) {
                            if nx || score == current { continue }
                            set.update(member, from: current, to: score)
                            updated += 1
                            changed = true
                        } else if !xx {
                            set.insert(member, score: score, limits: limits)
                            added += 1
                            changed = true
                        }
                    }
                    return (added, updated)
                } ?? (0, 0)
                if added + updated > 0 {
                    context.addChanges(Int64(added + updated))
                    var record: [[UInt8]] = [Array("zadd".utf8)]
                    for index in 1..<first { record.append(arguments.copy(index)) }
                    for (element, bits) in scores.enumerated() {
                        record.append(decimalBytes(Int64(bits)))
                        record.append(arguments.copy(first + element * 3 + 2))
                    }
                    context.propagate(record)
                    context.notify(.zset, "zadd", key)
                }
                context.output.writeInteger(ch ? added + updated : added)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    // MARK: GEODIST / GEOHASH / GEOPOS

    /// GEODIST key member1 member2 [unit].
    static func geodist(_ context: inout CommandContext) {
        var conversion = 1.0
        if context.arguments.count == 5 {
            guard let parsed = unit(&context, 4) else { return }
            conversion = parsed
        } else if context.arguments.count > 5 {
            return context.output.writeError(RedisError.syntax)
        }
        SortedSetCommands.read(&context, empty: { $0.output.writeNull() }) { context, set in
            guard let first = set.score(of: context.arguments[2]),
                  let second = set.score(of: context.arguments[3]) else { return context.output.writeNull() }
            let a = GeoHash.position(ofScore: first)
            let b = GeoHash.position(ofScore: second)
            let meters = GeoHash.distance(a.longitude, a.latitude, b.longitude, b.latitude)
            context.output.writeBulkString(distanceText(meters / conversion))
        }
    }

    /// GEOHASH and GEOPOS key member ...: one entry per member, null for a missing one.
    static func positions(_ context: inout CommandContext, hashes: Bool) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let set: SortedSetValue?
            do throws(KeyspaceError) {
                set = try shard.readSortedSet(context.database, key, now: context.now)
            } catch {
                return context.output.writeKeyspaceError(error)
            }
            let arguments = context.arguments
            context.output.writeArrayHeader(arguments.count - 2)
            for index in 2..<arguments.count {
                guard let score = set?.score(of: arguments[index]) else {
                    if hashes { context.output.writeNull() } else { context.output.writeNullArray() }
                    continue
                }
                if hashes {
                    context.output.writeBulkString(GeoHash.text(ofScore: score))
                } else {
                    let (longitude, latitude) = GeoHash.position(ofScore: score)
                    context.output.writeArrayHeader(2)
                    writeCoordinate(longitude, into: &context.output)
                    writeCoordinate(latitude, into: &context.output)
                }
            }
        }
    }

    // MARK: GEORADIUS / GEORADIUSBYMEMBER / GEOSEARCH / GEOSEARCHSTORE

    enum SearchMode { case radiusFromCoordinates, radiusFromMember, search }
    enum Order { case none, ascending, descending }

    /// One match.
    struct Match {
        var member: [UInt8]
        var longitude: Double
        var latitude: Double
        var distance: Double
        var score: Double
    }

    /// Locks the source and every shard a store could write: the destination of GEOSEARCHSTORE,
    /// or any argument after a STORE/STOREDIST word of GEORADIUS* (over-locking is harmless).
    static func lockSearchShards(_ context: inout CommandContext, source: Int, storeAllowed: Bool) {
        guard storeAllowed else { return }
        var mask = context.shardMask(keysFrom: 1, through: source)
        let arguments = context.arguments
        if source == 1 {
            for index in 2..<(arguments.count - 1)
            where arguments.matches(index, "store") || arguments.matches(index, "storedist") {
                mask.insert(context.keyspace.shardIndex(for: arguments[index + 1]))
            }
        }
        context.lockShards(mask)
    }

    /// georadiusGeneric: the source's type first, then the centre and shape, then the options
    /// left to right (each error as soon as it is met), then the checks across options.
    static func search(_ context: inout CommandContext, source: Int, mode: SearchMode, storeAllowed: Bool) {
        lockSearchShards(&context, source: source, storeAllowed: storeAllowed)
        let arguments = context.arguments
        let sourceKey = context.key(source)
        let shard = storeAllowed ? context.keyspace.shard(for: sourceKey) : context.lockShard(for: sourceKey)
        let set: SortedSetValue?
        do {
            set = try shard.readSortedSet(context.database, sourceKey, now: context.now)
        } catch {
            return context.output.writeKeyspaceError(error)
        }
        var shape = GeoShape()
        var base: Int
        var storeIndex: Int? = mode == .search && storeAllowed ? 1 : nil
        switch mode {
        case .radiusFromCoordinates:
            base = 6
            guard let point = coordinates(&context, 2) else { return }
            (shape.longitude, shape.latitude) = point
            guard radius(&context, 4, into: &shape) else { return }
        case .radiusFromMember:
            base = 5
            if let set {
                guard let score = set.score(of: arguments[2]) else { return context.output.writeError(memberNotFound) }
                (shape.longitude, shape.latitude) = GeoHash.position(ofScore: score)
                guard radius(&context, 3, into: &shape) else { return }
            }
        case .search:
            base = source + 1
        }
        var withDistance = false, withHash = false, withCoordinates = false
        var fromMember = false, fromCoordinates = false, byRadius = false, byBox = false
        var order = Order.none
        var any = false
        var count: Int64 = 0
        var storeDistance = false
        let isSearch = mode == .search
        var index = base
        while index < arguments.count {
            let remaining = arguments.count - index - 1
            if arguments.matches(index, "withdist") {
                withDistance = true
            } else if arguments.matches(index, "withhash") {
                withHash = true
            } else if arguments.matches(index, "withcoord") {
                withCoordinates = true
            } else if arguments.matches(index, "any") {
                any = true
            } else if arguments.matches(index, "asc") {
                order = .ascending
            } else if arguments.matches(index, "desc") {
                order = .descending
            } else if arguments.matches(index, "count") && remaining >= 1 {
                guard let parsed = context.integerArgument(index + 1) else { return }
                if parsed <= 0 { return context.output.writeError("ERR COUNT must be > 0") }
                count = parsed
                index += 1
            } else if !isSearch && storeAllowed && remaining >= 1
                        && (arguments.matches(index, "store") || arguments.matches(index, "storedist")) {
                storeDistance = arguments.matches(index, "storedist")
                storeIndex = index + 1
                index += 1
            } else if isSearch && storeAllowed && arguments.matches(index, "storedist") {
                storeDistance = true
            } else if isSearch && !fromCoordinates && remaining >= 1 && arguments.matches(index, "frommember") {
                if let set {
                    guard let score = set.score(of: arguments[index + 1]) else {
                        return context.output.writeError(memberNotFound)
                    }
                    (shape.longitude, shape.latitude) = GeoHash.position(ofScore: score)
                }
                fromMember = true
                index += 1
            } else if isSearch && !fromMember && remaining >= 2 && arguments.matches(index, "fromlonlat") {
                guard let point = coordinates(&context, index + 1) else { return }
                (shape.longitude, shape.latitude) = point
                fromCoordinates = true
                index += 2
            } else if isSearch && !byBox && remaining >= 2 && arguments.matches(index, "byradius") {
                guard radius(&context, index + 1, into: &shape) else { return }
                byRadius = true
                index += 2
            } else if isSearch && !byRadius && remaining >= 3 && arguments.matches(index, "bybox") {
                guard let width = double(&context, index + 1, message: "ERR need numeric width"),
                      let height = double(&context, index + 2, message: "ERR need numeric height") else { return }
                if height < 0 || width < 0 {
                    return context.output.writeError("ERR height or width cannot be negative")
                }
                guard let conversion = unit(&context, index + 3) else { return }
                shape.kind = .box(width: width, height: height)
                shape.conversion = conversion
                byBox = true
                index += 3
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        if storeIndex != nil && (withDistance || withHash || withCoordinates) {
            let message: StaticString = source == 2
                ? "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
                : "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
            return context.output.writeError(message)
        }
        if isSearch && !(fromMember || fromCoordinates) {
            let prefix = "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for "
            return context.output.writeError(Array(prefix.utf8) + arguments.copy(0))
        }
        if isSearch && !(byRadius || byBox) {
            let prefix = "ERR exactly one of BYRADIUS and BYBOX can be specified for "
            return context.output.writeError(Array(prefix.utf8) + arguments.copy(0))
        }
        if any && count == 0 { return context.output.writeError("ERR the ANY argument requires COUNT argument") }
        guard let set else {
            if let storeIndex {
                return store(&context, [], at: storeIndex, distances: storeDistance, search: mode == .search)
            }
            return context.output.writeArrayHeader(0)
        }
        if count != 0 && order == .none && !any { order = .ascending }
        var matches = collect(set, shape: shape, limit: any ? Int(count) : 0)
        if order != .none {
            let sign = order == .ascending ? 1 : -1
            if count == 0 || matches.count <= Int(count) {
                // Equal distances keep their scan order (a stable sort, as glibc's merge-sorting qsort).
                if order == .ascending {
                    matches.sort { $0.distance < $1.distance }
                } else {
                    matches.sort { $0.distance > $1.distance }
                }
            } else {
                // Redis sorts only the first COUNT with its partial quicksort, which decides
                // the order of equal distances: do exactly the same.
                partialQuicksort(&matches, start: 0, count: matches.count, keep: 0...(Int(count) - 1)) {
                    $0.distance > $1.distance ? sign : ($0.distance == $1.distance ? 0 : -sign)
                }
                matches.removeSubrange(Int(count)...)
            }
        }
        for position in matches.indices { matches[position].distance /= shape.conversion }
        if let storeIndex {
            return store(&context, matches, at: storeIndex, distances: storeDistance, search: mode == .search)
        }
        writeMatches(matches, distance: withDistance, hash: withHash, coordinates: withCoordinates,
                     into: &context.output)
    }

    /// A radius and its unit at argv[index], argv[index + 1] (extractDistanceOrReply).
    static func radius(_ context: inout CommandContext, _ index: Int, into shape: inout GeoShape) -> Bool {
        guard let radius = double(&context, index, message: "ERR need numeric radius") else { return false }
        if radius < 0 {
            context.output.writeError("ERR radius cannot be negative")
            return false
        }
        guard let conversion = unit(&context, index + 1) else { return false }
        shape.kind = .radius(radius)
        shape.conversion = conversion
        return true
    }

    /// Scans the nine cells around the centre (membersOfAllNeighbors): each cell is a score
    /// range [cell, next cell); a cell equal to the one scanned just before is skipped; with a
    /// limit (ANY) the scan stops as soon as that many matched.
    static func collect(_ set: SortedSetValue, shape: GeoShape, limit: Int) -> [Match] {
        var matches: [Match] = []
        let cells = shape.searchCells()
        var lastScanned = 0
        for (position, cell) in cells.enumerated() {
            if cell.isZero { continue }
            if lastScanned != 0 && cells[lastScanned] == cell { continue }
            if limit > 0 && matches.count >= limit { break }
            let low = Double(GeoHash.align52(cell))
            let high = Double(GeoHash.align52(GeoHash.Bits(bits: cell.bits &+ 1, step: cell.step)))
            let start = set.firstRank(whereScore: { $0 >= low })
            set.visit(from: start) { member, score in
                if score >= high { return false }
                let (longitude, latitude) = GeoHash.position(ofScore: score)
                if let distance = shape.contains(longitude: longitude, latitude: latitude) {
                    matches.append(Match(member: Array(member), longitude: longitude, latitude: latitude,
                                         distance: distance, score: score))
                }
                return !(limit > 0 && matches.count >= limit)
            }
            lastScanned = position
        }
        return matches
    }

    /// Redis's pqsort (pqsort.c: a Bentley-McIlroy quicksort with three-way partitioning that
    /// skips the partitions lying wholly outside `keep`), reproduced step for step so that
    /// elements comparing equal end in the same order.
    static func partialQuicksort<T>(_ items: inout [T], start first: Int, count total: Int, keep: ClosedRange<Int>,
                                    _ compare: (T, T) -> Int) {
        var start = first
        var n = total
        func median(_ a: Int, _ b: Int, _ c: Int) -> Int {
            compare(items[a], items[b]) < 0
                ? (compare(items[b], items[c]) < 0 ? b : (compare(items[a], items[c]) < 0 ? c : a))
                : (compare(items[b], items[c]) > 0 ? b : (compare(items[a], items[c]) < 0 ? a : c))
        }
        func blockSwap(_ a: Int, _ b: Int, _ length: Int) {
            for offset in 0..<max(0, length) { items.swapAt(a + offset, b + offset) }
        }
        func outside(_ from: Int, _ length: Int) -> Bool {
            (keep.lowerBound < from && keep.upperBound < from)
                || (keep.lowerBound >= from + length && keep.upperBound >= from + length)
        }
        while true {
            if n < 7 {
                var next = start + 1
                while next < start + n {
                    var position = next
                    while position > start && compare(items[position - 1], items[position]) > 0 {
                        items.swapAt(position, position - 1)
                        position -= 1
                    }
                    next += 1
                }
                return
            }
            var middle = start + n / 2
            if n > 7 {
                var left = start
                var right = start + n - 1
                if n > 40 {
                    let step = n / 8
                    left = median(left, left + step, left + 2 * step)
                    middle = median(middle - step, middle, middle + step)
                    right = median(right - 2 * step, right - step, right)
                }
                middle = median(left, middle, right)
            }
            items.swapAt(start, middle)
            var pa = start + 1, pb = start + 1
            var pc = start + n - 1, pd = start + n - 1
            while true {
                while pb <= pc {
                    let order = compare(items[pb], items[start])
                    if order > 0 { break }
                    if order == 0 {
                        items.swapAt(pa, pb)
                        pa += 1
                    }
                    pb += 1
                }
                while pb <= pc {
                    let order = compare(items[pc], items[start])
                    if order < 0 { break }
                    if order == 0 {
                        items.swapAt(pc, pd)
                        pd -= 1
                    }
                    pc -= 1
                }
                if pb > pc { break }
                items.swapAt(pb, pc)
                pb += 1
                pc -= 1
            }
            let end = start + n
            var length = min(pa - start, pb - pa)
            blockSwap(start, pb - length, length)
            length = min(pd - pc, end - pd - 1)
            blockSwap(pb, end - length, length)
            length = pb - pa
            if length > 1 && !outside(start, length) {
                partialQuicksort(&items, start: start, count: length, keep: keep, compare)
            }
            length = pd - pc
            guard length > 1 else { return }
            start = end - length
            n = length
            if outside(start, n) { return }
        }
    }

    static func writeMatches(_ matches: [Match], distance: Bool, hash: Bool, coordinates: Bool,
                             into output: inout OutputBuffer) {
        let extras = (distance ? 1 : 0) + (hash ? 1 : 0) + (coordinates ? 1 : 0)
        output.writeArrayHeader(matches.count)
        for match in matches {
            if extras > 0 { output.writeArrayHeader(extras + 1) }
            output.writeBulkString(match.member)
            if distance { output.writeBulkString(distanceText(match.distance)) }
            if hash { output.writeInteger(Int64(match.score)) }
            if coordinates {
                output.writeArrayHeader(2)
                writeCoordinate(match.longitude, into: &output)
                writeCoordinate(match.latitude, into: &output)
            }
        }
    }

    /// STORE/STOREDIST/GEOSEARCHSTORE: the matches (scored by hash, or by distance in the
    /// request's unit) replace argv[index]; no match deletes it. Replies with the count, and
    /// fires geosearchstore (GEOSEARCHSTORE) or georadiusstore, or del.
    static func store(_ context: inout CommandContext, _ matches: [Match], at index: Int, distances: Bool,
                      search: Bool) {
        let destination = context.key(index)
        let shard = context.keyspace.shard(for: destination)
        if matches.isEmpty {
            if shard.lookup(context.database, destination, now: context.now) != nil {
                shard.remove(context.database, destination)
                context.addChanges(1)
                context.notify(.generic, "del", destination)
            }
            return context.output.writeInteger(0)
        }
        var result = SortedSetValue()
        result.convertToIndexed()
        for match in matches where result.score(of: match.member) == nil {
            result.insertNewUnchecked(match.member, score: distances ? match.distance : match.score)
        }
        result.compactIfSmall(limits: context.engine.sortedSetLimits)
        shard.store(context.database, destination, Entry(value: .sortedSet(result)))
        context.addChanges(Int64(matches.count))
        context.output.writeInteger(matches.count)
        context.notify(.zset, search ? "geosearchstore" : "georadiusstore", destination)
    }
}
