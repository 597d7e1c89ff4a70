// GeoCommandsTests: GEO replies (RESP2/3), errors and propagation via the harness, against redis-server 7.0.15 bytes.
import TallyCommands
import TallyProtocol
import TallyTestSupport
import Testing

@Suite struct GeoCommandsTests {
    static func sicily() -> CommandHarness {
        let h = CommandHarness()
        h.run("GEOADD", "Sicily", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
        return h
    }

    @Test func addAndPointReads() {
        let h = CommandHarness()
        #expect(h.reply("GEOADD", "Sicily", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
            == ":2\r\n")
        #expect(h.reply("GEOADD", "Sicily", "CH", "13.361389", "38.115556", "Palermo", "15", "37", "Catania",
                        "1", "1", "x") == ":2\r\n")
        #expect(h.reply("GEOADD", "Sicily", "NX", "0", "0", "x", "2", "2", "y") == ":1\r\n")
        #expect(h.reply("GEOADD", "Sicily", "XX", "3", "3", "y", "4", "4", "x") == ":0\r\n")
        #expect(h.reply("GEOHASH", "Sicily", "Palermo", "Catania", "x")
            == "*3\r\n$11\r\nsqc8b49rny0\r\n$11\r\nsqddmrdst70\r\n$11\r\ns0dyg00twv0\r\n")
        #expect(h.reply("GEOPOS", "Sicily", "x")
            == "*1\r\n*2\r\n$19\r\n4.00000244379043579\r\n$19\r\n3.99999910393250957\r\n")
        #expect(h.reply("GEODIST", "Sicily", "Palermo", "x", "mi") == "$9\r\n2430.6432\r\n")
        #expect(h.reply("GEODIST", "Sicily", "Palermo", "x", "ft") == "$13\r\n12833763.9825\r\n")
        #expect(h.reply("GEODIST", "nokey", "a", "b") == "$-1\r\n")
        #expect(h.reply("TYPE", "Sicily") == "+zset\r\n")
    }

    @Test func addErrors() {
        let h = CommandHarness()
        #expect(h.reply("GEOADD", "k", "200", "10", "a")
            == "-ERR invalid longitude,latitude pair 200.000000,10.000000\r\n")
        #expect(h.reply("GEOADD", "k", "inf", "10", "a") == "-ERR invalid longitude,latitude pair inf,10.000000\r\n")
        #expect(h.reply("GEOADD", "k", "10", "-86", "a")
            == "-ERR invalid longitude,latitude pair 10.000000,-86.000000\r\n")
        #expect(h.reply("GEOADD", "k", "abc", "10", "a") == "-ERR value is not a valid float\r\n")
        #expect(h.reply("GEOADD", "k", "nx", "xx", "10", "10", "a") == "-ERR syntax error\r\n")
        #expect(h.reply("GEOADD", "k", "gt", "10", "10", "a") == "-ERR syntax error\r\n")
        h.run("SET", "str", "x")
        #expect(h.reply("GEOADD", "str", "1", "1", "a")
            == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        #expect(h.reply("GEOPOS", "str", "a")
            == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
    }

    @Test func radiusSearches() {
        let h = Self.sicily()
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH")
           
                == "*2\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n*2\r\n"
            + "$20\r\n13.36138933897018433\r\n"
            + "$20\r\n38.11555639549629859\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n"
            + "$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "DESC", "COUNT", "1")
            == "*1\r\n$7\r\nPalermo\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "ANY")
            == "-ERR the ANY argument requires COUNT argument\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "0") == "-ERR COUNT must be > 0\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "-1", "km") == "-ERR radius cannot be negative\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "abc", "km") == "-ERR need numeric radius\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "yd")
            == "-ERR unsupported unit provided. please use M, KM, FT, MI\r\n")
        #expect(h.reply("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STORE", "d") == "-ERR syntax error\r\n")
        #expect(h.reply("GEORADIUSBYMEMBER", "Sicily", "Palermo", "200", "km", "WITHDIST")
            == "*2\r\n*2\r\n$7\r\nPalermo\r\n$6\r\n0.0000\r\n*2\r\n$7\r\nCatania\r\n$8\r\n166.2742\r\n")
        #expect(h.reply("GEORADIUSBYMEMBER", "Sicily", "nope", "200", "km")
            == "-ERR could not decode requested zset member\r\n")
        #expect(h.reply("GEORADIUSBYMEMBER", "nokey", "nope", "abc", "km") == "*0\r\n")
    }

    @Test func searchAndStore() {
        let h = Self.sicily()
        #expect(h.reply("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "ASC",
                        "WITHDIST")
            == "*2\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n")
        #expect(h.reply("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "km")
            == "-ERR syntax error\r\n")
        #expect(h.reply("geosearch", "Sicily", "BYRADIUS", "1", "km", "ASC", "WITHDIST")
            == "-ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for geosearch\r\n")
        #expect(h.reply("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "-1", "1", "km")
            == "-ERR height or width cannot be negative\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "dst", "WITHDIST")
            == "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n")
        #expect(h.reply("GEORADIUS", "Sicily", "15", "37", "200", "km", "STOREDIST", "dst2") == ":2\r\n")
        #expect(h.reply("ZRANGE", "dst2", "0", "-1", "WITHSCORES")
            == "*4\r\n$7\r\nCatania\r\n$18\r\n56.441257870158204\r\n$7\r\nPalermo\r\n$18\r\n190.44242984775784\r\n")
        #expect(h.reply("GEOSEARCHSTORE", "dst", "Sicily", "FROMMEMBER", "Palermo", "BYRADIUS", "300", "km")
            == ":2\r\n")
        #expect(h.reply("GEOSEARCHSTORE", "dst", "nokey", "FROMMEMBER", "Palermo", "BYRADIUS", "300", "km") == ":0\r\n")
        #expect(h.reply("EXISTS", "dst") == ":0\r\n")
    }

    @Test func resp3Coordinates() {
        let h = Self.sicily()
        h.run("HELLO", "3")
        #expect(h.reply("GEODIST", "Sicily", "Palermo", "Catania") == "$11\r\n166274.1516\r\n")
        #expect(h.reply("GEODIST", "nokey", "a", "b") == "_\r\n")
        #expect(h.reply("GEOPOS", "Sicily", "Palermo", "nope")
            == "*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n")
    }

    @Test func geoaddIsLoggedAsZaddAndStoresVerbatim() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("GEOADD", "g", "CH", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
        h.run("GEOADD", "g", "13.361389", "38.115556", "Palermo")
        h.run("GEORADIUS", "g", "15", "37", "300", "km", "WITHDIST")
        h.run("GEORADIUS", "g", "15", "37", "300", "km", "STORE", "d")
        h.run("GEOSEARCHSTORE", "d2", "g", "FROMMEMBER", "Palermo", "BYRADIUS", "1", "m", "STOREDIST")
        #expect(log.recorded == ["0:zadd g CH 3479099956230698 Palermo 3479447370796909 Catania",
                                 "0:GEORADIUS g 15 37 300 km STORE d",
                                 "0:GEOSEARCHSTORE d2 g FROMMEMBER Palermo BYRADIUS 1 m STOREDIST"])
        #expect(h.reply("ZRANGE", "d2", "0", "-1", "WITHSCORES") == "*2\r\n$7\r\nPalermo\r\n$1\r\n0\r\n")
    }
}
