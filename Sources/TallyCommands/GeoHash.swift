// GeoHash: the 52-bit interleaved geohash a geo member's score holds, and the geometry of a geo search.
import Glibc

/// Geohash arithmetic with Redis's constants (geohash.c, geohash_helper.c). A position is
/// stored as a 26-step hash: latitude and longitude each cut into 2^26 slices, their slice
/// numbers interleaved bit by bit (longitude in the odd bits), giving 52 bits that a double
/// score holds exactly. Every formula keeps Redis's order of operations, so decoded
/// coordinates and distances are the same doubles Redis computes and print identically.
enum GeoHash {
    /// Steps of a stored hash (GEO_STEP_MAX): 52 bits.
    static let stepMax: UInt8 = 26
    /// The latitude range Redis encodes (the Web Mercator limits, not ±90).
    static let latitudeLimit = 85.05112878
    /// The longitude range.
    static let longitudeLimit = 180.0
    /// The Earth's radius Redis uses for haversine, in meters.
    static let earthRadiusMeters = 6372797.560856
    /// Half the Mercator world width, the bound of the step estimate.
    static let mercatorMax = 20037726.37
    static let degreesToRadians = Double.pi / 180.0

    /// A hash of `step` steps (2 * step meaningful bits). Redis's "zero" hash (bits and step 0)
    /// marks a neighbour excluded from a search.
    struct Bits: Equatable {
        var bits: UInt64
        var step: UInt8
        static let zero = Bits(bits: 0, step: 0)
        var isZero: Bool { bits == 0 && step == 0 }
    }

    /// A closed coordinate interval.
    struct Interval {
        var min: Double
        var max: Double
    }

    static let longitudes = Interval(min: -longitudeLimit, max: longitudeLimit)
    static let latitudes = Interval(min: -latitudeLimit, max: latitudeLimit)

    /// Spreads the low 32 bits of `x` over the even bits and those of `y` over the odd bits.
    static func interleave(_ x: UInt32, _ y: UInt32) -> UInt64 {
        func spread(_ value: UInt32) -> UInt64 {
            var v = UInt64(value)
            v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF
            v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF
            v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F
            v = (v | (v << 2)) & 0x3333_3333_3333_3333
            v = (v | (v << 1)) & 0x5555_5555_5555_5555
            return v
        }
        return spread(x) | (spread(y) << 1)
    }

    /// The inverse of `interleave`: even bits in the low half, odd bits in the high half.
    static func deinterleave(_ value: UInt64) -> UInt64 {
        func gather(_ input: UInt64) -> UInt64 {
            var v = input & 0x5555_5555_5555_5555
            v = (v | (v >> 1)) & 0x3333_3333_3333_3333
            v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F
            v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF
            v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF
            v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF
            return v
        }
        return gather(value) | (gather(value >> 1) << 32)
    }

    /// geohashEncode: nil outside Redis's limits or the given ranges. A coordinate exactly on
    /// the upper limit yields slice 2^step, one bit beyond the hash, as in Redis.
    static func encode(longitude: Double, latitude: Double, step: UInt8,
                       longitudeRange: Interval = longitudes, latitudeRange: Interval = latitudes) -> Bits? {
        if step == 0 || step > 32 { return nil }
        if longitude > longitudeLimit || longitude < -longitudeLimit
            || latitude > latitudeLimit || latitude < -latitudeLimit { return nil }
        if latitude < latitudeRange.min || latitude > latitudeRange.max
            || longitude < longitudeRange.min || longitude > longitudeRange.max { return nil }
        var latitudeOffset = (latitude - latitudeRange.min) / (latitudeRange.max - latitudeRange.min)
        var longitudeOffset = (longitude - longitudeRange.min) / (longitudeRange.max - longitudeRange.min)
        latitudeOffset *= Double(UInt64(1) << UInt64(step))
        longitudeOffset *= Double(UInt64(1) << UInt64(step))
        return Bits(bits: interleave(UInt32(latitudeOffset), UInt32(longitudeOffset)), step: step)
    }

    /// The cell a hash names (geohashDecode).
    static func decode(_ hash: Bits, longitudeRange: Interval = longitudes,
                       latitudeRange: Interval = latitudes) -> (longitude: Interval, latitude: Interval) {
        let separated = deinterleave(hash.bits)
        let latitudeScale = latitudeRange.max - latitudeRange.min
        let longitudeScale = longitudeRange.max - longitudeRange.min
        let latitudeSlice = UInt32(truncatingIfNeeded: separated)
        let longitudeSlice = UInt32(truncatingIfNeeded: separated >> 32)
        let slices = Double(UInt64(1) << UInt64(hash.step))
        let latitude = Interval(
            min: latitudeRange.min + (Double(latitudeSlice) / slices) * latitudeScale,
            max: latitudeRange.min + (Double(latitudeSlice &+ 1) / slices) * latitudeScale)
        let longitude = Interval(
            min: longitudeRange.min + (Double(longitudeSlice) / slices) * longitudeScale,
            max: longitudeRange.min + (Double(longitudeSlice &+ 1) / slices) * longitudeScale)
        return (longitude, latitude)
    }

    /// The 52-bit score of a hash (geohashAlign52Bits).
    static func align52(_ hash: Bits) -> UInt64 {
        hash.bits << UInt64(52 - Int(hash.step) * 2)
    }

    /// A score as the 64-bit value C's `(uint64_t)` cast gives on x86-64 (scores of geo
    /// members are below 2^54; other sorted sets may hold anything, and GEOPOS reads them).
    /// At or above 2^63 the compiler subtracts 2^63, converts signed and flips the top bit, so
    /// 2^64 and beyond (and +inf) come out as 0; -2^63 and below, -inf and NaN as 2^63.
    static func scoreBits(_ score: Double) -> UInt64 {
        let twoTo63 = 9_223_372_036_854_775_808.0
        if score >= twoTo63 {
            let reduced = score - twoTo63
            return reduced < twoTo63 ? UInt64(reduced) ^ (1 << 63) : 0
        }
        if score > -twoTo63 { return UInt64(bitPattern: Int64(score)) }
        return 0x8000_0000_0000_0000
    }

    /// The position a score decodes to: the centre of its 26-step cell, clamped to the limits
    /// (decodeGeohash + geohashDecodeAreaToLongLat).
    static func position(ofScore score: Double) -> (longitude: Double, latitude: Double) {
        let cell = decode(Bits(bits: scoreBits(score), step: stepMax))
        var longitude = (cell.longitude.min + cell.longitude.max) / 2
        if longitude > longitudeLimit { longitude = longitudeLimit }
        if longitude < -longitudeLimit { longitude = -longitudeLimit }
        var latitude = (cell.latitude.min + cell.latitude.max) / 2
        if latitude > latitudeLimit { latitude = latitudeLimit }
        if latitude < -latitudeLimit { latitude = -latitudeLimit }
        return (longitude, latitude)
    }

    /// The score GEOADD stores for a validated position.
    static func score(longitude: Double, latitude: Double) -> UInt64 {
        guard let hash = encode(longitude: longitude, latitude: latitude, step: stepMax) else { return 0 }
        return align52(hash)
    }

    /// The 11-character base32 geohash of a score: the decoded position re-encoded over the
    /// standard ±90 latitude range; the 11th character stands for bits a 52-bit hash lacks.
    static func text(ofScore score: Double) -> [UInt8] {
        let alphabet = Array("0123456789bcdefghjkmnpqrstuvwxyz".utf8)
        let (longitude, latitude) = position(ofScore: score)
        let bits = encode(longitude: longitude, latitude: latitude, step: stepMax,
                          latitudeRange: Interval(min: -90, max: 90))?.bits ?? 0
        var text: [UInt8] = []
        text.reserveCapacity(11)
        for index in 0..<10 { text.append(alphabet[Int((bits >> UInt64(52 - (index + 1) * 5)) & 0x1f)]) }
        text.append(alphabet[0])
        return text
    }

    // MARK: Neighbours

    /// Moves a hash one cell east (+1) or west (-1), wrapping around.
    static func moveLongitude(_ hash: inout Bits, _ direction: Int) {
        let odd: UInt64 = 0xAAAA_AAAA_AAAA_AAAA
        let even: UInt64 = 0x5555_5555_5555_5555
        var x = hash.bits & odd
        let y = hash.bits & even
        let unused = even >> UInt64(64 - Int(hash.step) * 2)
        if direction > 0 {
            x = x &+ (unused &+ 1)
        } else {
            x = x | unused
            x = x &- (unused &+ 1)
        }
        x &= odd >> UInt64(64 - Int(hash.step) * 2)
        hash.bits = x | y
    }

    /// Moves a hash one cell north (+1) or south (-1), wrapping around.
    static func moveLatitude(_ hash: inout Bits, _ direction: Int) {
        let odd: UInt64 = 0xAAAA_AAAA_AAAA_AAAA
        let even: UInt64 = 0x5555_5555_5555_5555
        let x = hash.bits & odd
        var y = hash.bits & even
        let unused = odd >> UInt64(64 - Int(hash.step) * 2)
        if direction > 0 {
            y = y &+ (unused &+ 1)
        } else {
            y = y | unused
            y = y &- (unused &+ 1)
        }
        y &= even >> UInt64(64 - Int(hash.step) * 2)
        hash.bits = x | y
    }

    static func neighbour(_ hash: Bits, east: Int, north: Int) -> Bits {
        var moved = hash
        if east != 0 { moveLongitude(&moved, east) }
        if north != 0 { moveLatitude(&moved, north) }
        return moved
    }

    // MARK: Distances

    /// Distance along a meridian.
    static func latitudeDistance(_ first: Double, _ second: Double) -> Double {
        earthRadiusMeters * fabs(second * degreesToRadians - first * degreesToRadians)
    }

    /// Haversine great-circle distance in meters (geohashGetDistance).
    static func distance(_ longitude1: Double, _ latitude1: Double,
                         _ longitude2: Double, _ latitude2: Double) -> Double {
        let longitude1Radians = longitude1 * degreesToRadians
        let longitude2Radians = longitude2 * degreesToRadians
        let v = sin((longitude2Radians - longitude1Radians) / 2)
        if v == 0.0 { return latitudeDistance(latitude1, latitude2) }
        let latitude1Radians = latitude1 * degreesToRadians
        let latitude2Radians = latitude2 * degreesToRadians
        let u = sin((latitude2Radians - latitude1Radians) / 2)
        let a = u * u + cos(latitude1Radians) * cos(latitude2Radians) * v * v
        return 2.0 * earthRadiusMeters * asin(sqrt(a))
    }
}

/// The area a geo search covers: a circle or an axis-aligned box around a centre, with the
/// unit factor its sizes were given in (GeoShape).
struct GeoShape {
    enum Kind {
        case radius(Double)
        case box(width: Double, height: Double)
    }

    var longitude = 0.0
    var latitude = 0.0
    var kind = Kind.radius(0)
    /// Meters per unit of the sizes.
    var conversion = 1.0

    /// The distance in meters from the centre to (longitude, latitude) when that point is
    /// inside the shape, else nil (geoWithinShape).
    func contains(longitude pointLongitude: Double, latitude pointLatitude: Double) -> Double? {
        switch kind {
        case .radius(let radius):
            let distance = GeoHash.distance(longitude, latitude, pointLongitude, pointLatitude)
            return distance > radius * conversion ? nil : distance
        case .box(let width, let height):
            if GeoHash.latitudeDistance(pointLatitude, latitude) > height * conversion / 2 { return nil }
            let across = GeoHash.distance(pointLongitude, pointLatitude, longitude, pointLatitude)
            if across > width * conversion / 2 { return nil }
            return GeoHash.distance(longitude, latitude, pointLongitude, pointLatitude)
        }
    }

    /// The bounding box [minLongitude, minLatitude, maxLongitude, maxLatitude] (geohashBoundingBox).
    func boundingBox() -> (Double, Double, Double, Double) {
        let height: Double, width: Double
        switch kind {
        case .radius(let radius):
            height = conversion * radius
            width = conversion * radius
        case .box(let boxWidth, let boxHeight):
            height = conversion * (boxHeight / 2)
            width = conversion * (boxWidth / 2)
        }
        let radians = GeoHash.degreesToRadians
        let latitudeDelta = (height / GeoHash.earthRadiusMeters) / radians
        let longitudeDeltaTop = (width / GeoHash.earthRadiusMeters / cos((latitude + latitudeDelta) * radians))
            / radians
        let longitudeDeltaBottom = (width / GeoHash.earthRadiusMeters / cos((latitude - latitudeDelta) * radians))
            / radians
        let southern = latitude < 0
        return (southern ? longitude - longitudeDeltaBottom : longitude - longitudeDeltaTop,
                latitude - latitudeDelta,
                southern ? longitude + longitudeDeltaBottom : longitude + longitudeDeltaTop,
                latitude + latitudeDelta)
    }

    /// Steps of the cells to search for a radius in meters (geohashEstimateStepsByRadius).
    static func estimateSteps(radiusMeters: Double, latitude: Double) -> UInt8 {
        if radiusMeters == 0 { return 26 }
        var range = radiusMeters
        var step = 1
        while range < GeoHash.mercatorMax {
            range *= 2
            step += 1
        }
        step -= 2
        if latitude > 66 || latitude < -66 {
            step -= 1
            if latitude > 80 || latitude < -80 { step -= 1 }
        }
        return UInt8(Swift.min(26, Swift.max(1, step)))
    }

    /// The nine cells to scan, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW), with the
    /// ones that lie wholly outside the bounding box zeroed (geohashCalculateAreasByShapeWGS84).
    func searchCells() -> [GeoHash.Bits] {
        let (minLongitude, minLatitude, maxLongitude, maxLatitude) = boundingBox()
        var radiusMeters: Double
        switch kind {
        case .radius(let radius): radiusMeters = radius
        case .box(let width, let height): radiusMeters = sqrt((width / 2) * (width / 2) + (height / 2) * (height / 2))
        }
        radiusMeters *= conversion
        var steps = Self.estimateSteps(radiusMeters: radiusMeters, latitude: latitude)
        func cells(_ steps: UInt8) -> [GeoHash.Bits] {
            let centre = GeoHash.encode(longitude: longitude, latitude: latitude, step: steps)
                ?? GeoHash.Bits(bits: 0, step: steps)
            return [centre, GeoHash.neighbour(centre, east: 0, north: 1), GeoHash.neighbour(centre, east: 0, north: -1),
                    GeoHash.neighbour(centre, east: 1, north: 0), GeoHash.neighbour(centre, east: -1, north: 0),
                    GeoHash.neighbour(centre, east: 1, north: 1), GeoHash.neighbour(centre, east: -1, north: 1),
                    GeoHash.neighbour(centre, east: 1, north: -1), GeoHash.neighbour(centre, east: -1, north: -1)]
        }
        var found = cells(steps)
        // A step too fine for the box at the edges of the covered area: one coarser.
        let north = GeoHash.decode(found[1]), south = GeoHash.decode(found[2])
        let east = GeoHash.decode(found[3]), west = GeoHash.decode(found[4])
        let tooFine = north.latitude.max < maxLatitude || south.latitude.min > minLatitude
            || east.longitude.max < maxLongitude || west.longitude.min > minLongitude
        if steps > 1 && tooFine {
            steps -= 1
            found = cells(steps)
        }
        if steps >= 2 {
            let area = GeoHash.decode(found[0])
            if area.latitude.min < minLatitude { for index in [2, 8, 7] { found[index] = .zero } }
            if area.latitude.max > maxLatitude { for index in [1, 5, 6] { found[index] = .zero } }
            if area.longitude.min < minLongitude { for index in [4, 8, 6] { found[index] = .zero } }
            if area.longitude.max > maxLongitude { for index in [3, 7, 5] { found[index] = .zero } }
        }
        return found
    }
}
