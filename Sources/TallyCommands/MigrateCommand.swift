// MigrateCommand: MIGRATE (cluster.c migrateCommand), DUMP payloads sent to another server as RESTOREs.
import TallyKeyspace
import TallyProtocol

/// Why an exchange with a MIGRATE target failed (syncio.c): Redis retries a failure once, on a
/// fresh connection, unless it was a timeout.
public enum MigrationIOFailure: Error, Sendable {
    /// Nothing arrived, or not everything could be sent, within the timeout (ETIMEDOUT).
    case timedOut
    /// The connection failed or was closed by the target.
    case failed
}

/// One connection to a MIGRATE target, the caller's alone between `MigrationLinks.acquire` and
/// `release` (Redis's migrateCachedSocket).
public protocol MigrationLink: AnyObject {
    /// The database the target last selected on this connection, -1 when none is known
    /// (`last_dbid`): SELECT is sent only when the next MIGRATE wants another one.
    var lastDatabase: Int64 { get set }
    /// Sends all of `bytes`, each 64 KB piece within `timeoutMilliseconds` (connSyncWrite).
    func send(_ bytes: [UInt8], timeoutMilliseconds: Int64) throws(MigrationIOFailure)
    /// One reply line without its CRLF, at most 1023 bytes (a longer line is cut there and its
    /// rest read as the next line, as connSyncReadLine's 1024-byte buffer does), waiting at most
    /// `timeoutMilliseconds` for each byte.
    func readLine(timeoutMilliseconds: Int64) throws(MigrationIOFailure) -> [UInt8]
}

/// The connections MIGRATE keeps to its targets, one per "host:port" as typed (migrateGetSocket,
/// migrateCloseSocket); the server implements it over POSIX sockets.
public protocol MigrationLinks: Sendable {
    /// The cached connection to `host:port`, waiting while another MIGRATE uses it, or a new one
    /// connected within `timeoutMilliseconds`; nil when it cannot connect.
    func acquire(host: [UInt8], port: [UInt8], timeoutMilliseconds: Int64) -> (any MigrationLink)?
    /// Gives `link` back; `close` drops it from the cache (after a socket error), so the next
    /// MIGRATE connects afresh and selects its database again.
    func release(_ link: any MigrationLink, close: Bool)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key [key ...]].
///
/// ```
///  parse ─► lock keys' shards ─► DUMP payloads + expiries ─► unlock
///      ─► acquire link ─► send AUTH? SELECT? RESTORE×n ─► read replies ─► release link
///      │        (a socket error before the first RESTORE reply, not a timeout: once more, reconnected)
///      └─► (no COPY) lock the shards again ─► delete each acknowledged, unchanged key ─► DEL logged
/// ```
///
/// Redis runs all of this on its one thread, so no other client runs while MIGRATE waits on the
/// target: a key cannot change between its DUMP and its deletion, and the deletion never loses
/// a write that another client was told succeeded. Tally keeps that promise without holding
/// shard locks across the network (a slow target would then stall every client of those
/// shards, not only this one): after the exchange a key is deleted only if its value and expiry
/// still encode to what was sent. One written meanwhile stays here, newer than the target's
/// copy, and is left out of the DEL that is logged, so replicas and the AOF keep it too. Under
/// EXEC or a script the shards are not this command's to release, and the exchange runs with
/// every shard held, as Redis's whole server waits. The calling connection waits throughout,
/// and so do the other clients of its I/O thread.
public enum MigrateCommand {
    /// The MIGRATE row, sending payloads made by `codec` over `links`.
    public static func spec(codec: any DumpPayloadCodec, links: any MigrationLinks) -> CommandSpec {
        command("migrate", -6, [.write, .movableKeys], keys: (3, 3, 1), "@keyspace @write @slow @dangerous") {
            context in migrate(&context, codec: codec, links: links)
        }
    }

    /// What MIGRATE's options asked for.
    struct Options {
        var copy = false
        var replace = false
        var username: ArraySlice<UInt8>?
        var password: ArraySlice<UInt8>?
        /// Argument index of the first key and how many there are (3 and 1 without KEYS).
        var firstKey = 3
        var keyCount = 1
    }

    /// A key found at the start, with what is sent for it.
    struct Item {
        var key: Key
        var expiresAtMilliseconds: Int64?
        var payload: [UInt8]
    }

    /// The options from argument 6 on, in migrateCommand's order; nil after writing its error.
    static func parseOptions(_ context: inout CommandContext) -> Options? {
        var options = Options()
        let count = context.arguments.count
        var index = 6
        while index < count {
            let remaining = count - 1 - index
            if context.arguments.matches(index, "copy") {
                options.copy = true
            } else if context.arguments.matches(index, "replace") {
                options.replace = true
            } else if context.arguments.matches(index, "auth") {
                guard remaining >= 1 else {
                    context.output.writeError(RedisError.syntax)
                    return nil
                }
                index += 1
                options.password = context.arguments[index]
                context.session.redactedArguments.append(index)
            } else if context.arguments.matches(index, "auth2") {
                guard remaining >= 2 else {
                    context.output.writeError(RedisError.syntax)
                    return nil
                }
                options.username = context.arguments[index + 1]
                options.password = context.arguments[index + 2]
                context.session.redactedArguments += [index + 1, index + 2]
                index += 2
            } else if context.arguments.matches(index, "keys") {
                guard context.arguments[3].isEmpty else {
                    context.output.writeError(
                        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string")
                    return nil
                }
                // Every argument after KEYS is a key, even one spelled like an option.
                options.firstKey = index + 1
                options.keyCount = count - index - 1
                break
            } else {
                context.output.writeError(RedisError.syntax)
                return nil
            }
            index += 1
        }
        return options
    }

    static func migrate(_ context: inout CommandContext, codec: any DumpPayloadCodec, links: any MigrationLinks) {
        guard let options = parseOptions(&context) else { return }
        // The timeout is checked before the database, as Redis does; a timeout <= 0 means 1 s.
        guard let givenTimeout = context.integerArgument(5), let database = context.integerArgument(4) else { return }
        let timeout = givenTimeout <= 0 ? 1000 : givenTimeout

        // lookupKeyRead on every key: keys that are missing or expired are skipped.
        var items: [Item] = []
        let lastKey = options.firstKey + options.keyCount - 1
        let mask = options.keyCount > 0 ? context.shardMask(keysFrom: options.firstKey, through: lastKey) : ShardMask()
        if options.keyCount > 0 {
            context.lockShards(mask)
            for index in options.firstKey...lastKey {
                let key = context.key(index)
                let shard = context.keyspace.shard(for: key)
                guard let entry = shard.lookupRead(context.database, key, now: context.now) else { continue }
                items.append(Item(key: key, expiresAtMilliseconds: entry.expiresAtMilliseconds,
                                  payload: codec.payload(of: entry.value)))
            }
        }
        if items.isEmpty { return context.output.writeStaticString("+NOKEY\r\n") }
        let released = context.releaseShardsForSlowWait()

        guard let acknowledged = exchange(&context, items: &items, options: options, database: database,
                                          timeout: timeout, links: links),
              !options.copy, !acknowledged.isEmpty
        else { return }
        if released { context.lockShards(mask) }
        deleteMigrated(&context, acknowledged.map { items[$0] }, verifying: released, codec: codec)
    }

    /// Talks to the target as migrateCommand does from `try_again` on and writes the reply.
    /// Returns the indexes into `items` of the keys the target acknowledged (every key with a
    /// non-error RESTORE reply, also when another key failed), or nil when the target could not
    /// be reached. `items` loses the keys that expired before an attempt, as Redis compacts its
    /// arrays. The link is always released before returning, so the caller may take shard locks
    /// again without ever holding them while it waits for a link.
    static func exchange(_ context: inout CommandContext, items: inout [Item], options: Options, database: Int64,
                         timeout: Int64, links: any MigrationLinks) -> [Int]? {
        let host = context.arguments.copy(1)
        let port = context.arguments.copy(2)
        var mayRetry = true
        while true {
            guard let link = links.acquire(host: host, port: port, timeoutMilliseconds: timeout) else {
                context.output.writeError("IOERR error or timeout connecting to the client")
                return nil
            }
            let selects = link.lastDatabase != database
            let request = makeRequest(items: &items, options: options, database: database, selects: selects,
                                      now: context.engine.clock.nowMilliseconds())
            var failure: MigrationIOFailure
            var writing = false
            attempt: do {
                do { try link.send(request, timeoutMilliseconds: timeout) } catch {
                    failure = error
                    writing = true
                    break attempt
                }
                let authReply: [UInt8]
                let selectReply: [UInt8]
                do {
                    authReply = options.password != nil ? try link.readLine(timeoutMilliseconds: timeout) : []
                    selectReply = selects ? try link.readLine(timeoutMilliseconds: timeout) : []
                } catch {
                    failure = error
                    break attempt
                }
                let earlierError = authReply.first == UInt8(ascii: "-") ? authReply
                    : selectReply.first == UInt8(ascii: "-") ? selectReply : nil
                var acknowledged: [Int] = []
                var targetError = false
                var socketFailure: MigrationIOFailure?
                var read = 0
                while read < items.count {
                    let reply: [UInt8]
                    do { reply = try link.readLine(timeoutMilliseconds: timeout) } catch {
                        socketFailure = error
                        break
                    }
                    if let failed = earlierError ?? (reply.first == UInt8(ascii: "-") ? reply : nil) {
                        if !targetError {
                            // The target's database is no longer known after an error.
                            link.lastDatabase = -1
                            targetError = true
                            var message = Array("ERR Target instance replied with error: ".utf8)
                            message += failed.dropFirst()
                            context.output.writeError(message)
                        }
                    } else {
                        acknowledged.append(read)
                    }
                    read += 1
                }
                guard let socketFailure else {
                    if !targetError {
                        link.lastDatabase = database
                        context.output.writeOK()
                    }
                    links.release(link, close: false)
                    return acknowledged
                }
                links.release(link, close: true)
                // Nothing was acknowledged yet and it was not a timeout: the cached connection
                // had probably been closed by the target, so try once more on a new one.
                if !targetError && read == 0 && mayRetry && socketFailure != .timedOut {
                    mayRetry = false
                    continue
                }
                if !targetError { context.output.writeError("IOERR error or timeout reading to target instance") }
                return acknowledged
            }
            links.release(link, close: true)
            if failure != .timedOut && mayRetry {
                mayRetry = false
                continue
            }
            context.output.writeError(writing ? "IOERR error or timeout writing to target instance"
                                      : "IOERR error or timeout reading to target instance")
            return nil
        }
    }

    /// The pipelined request: AUTH if asked, SELECT when the link's database differs, then one
    /// RESTORE key ttl payload [REPLACE] per key (RESTORE-ASKING is for cluster mode only). The
    /// TTL is what remains at `now`, at least 1 ms; a key whose expiry has passed is dropped
    /// from `items` and not sent.
    static func makeRequest(items: inout [Item], options: Options, database: Int64, selects: Bool,
                            now: Int64) -> [UInt8] {
        var request: [UInt8] = []
        if let password = options.password {
            appendHeader(&request, UInt8(ascii: "*"), options.username != nil ? 3 : 2)
            appendBulk(&request, "AUTH".utf8)
            if let username = options.username { appendBulk(&request, username) }
            appendBulk(&request, password)
        }
        if selects {
            appendHeader(&request, UInt8(ascii: "*"), 2)
            appendBulk(&request, "SELECT".utf8)
            appendBulk(&request, String(database).utf8)
        }
        var kept: [Item] = []
        kept.reserveCapacity(items.count)
        for item in items {
            var ttl: Int64 = 0
            if let expiry = item.expiresAtMilliseconds {
                ttl = expiry &- now
                if ttl < 0 { continue }
                ttl = max(ttl, 1)
            }
            appendHeader(&request, UInt8(ascii: "*"), options.replace ? 5 : 4)
            appendBulk(&request, "RESTORE".utf8)
            appendBulk(&request, item.key.bytes)
            appendBulk(&request, String(ttl).utf8)
            appendBulk(&request, item.payload)
            if options.replace { appendBulk(&request, "REPLACE".utf8) }
            kept.append(item)
        }
        items = kept
        return request
    }

    private static func appendHeader(_ request: inout [UInt8], _ marker: UInt8, _ count: Int) {
        request.append(marker)
        request += String(count).utf8
        request += [13, 10]
    }

    private static func appendBulk<C: Collection>(_ request: inout [UInt8], _ bytes: C) where C.Element == UInt8 {
        appendHeader(&request, UInt8(ascii: "$"), bytes.count)
        request += bytes
        request += [13, 10]
    }

    /// Deletes the migrated keys (dbDelete, a "del" event and a change each) and logs them as one
    /// DEL, as Redis rewrites the command's argv. With `verifying`, the shards were released
    /// during the exchange, and a key whose value or expiry no longer encodes to what was sent is
    /// kept (see the type's comment). A key named twice is deleted once and logged twice, as
    /// Redis's DEL argv lists it.
    static func deleteMigrated(_ context: inout CommandContext, _ items: [Item], verifying: Bool,
                               codec: any DumpPayloadCodec) {
        var deleted: [[UInt8]] = [Words.del]
        var removedKeys = Set<Key>()
        for item in items {
            let shard = context.keyspace.shard(for: item.key)
            guard let entry = shard.lookup(context.database, item.key, now: context.now) else {
                if removedKeys.contains(item.key) { deleted.append(item.key.bytes) }
                continue
            }
            if verifying && (entry.expiresAtMilliseconds != item.expiresAtMilliseconds
                             || codec.payload(of: entry.value) != item.payload) {
                continue
            }
            shard.remove(context.database, item.key)
            removedKeys.insert(item.key)
            context.notify(.generic, "del", item.key)
            deleted.append(item.key.bytes)
        }
        guard deleted.count > 1 else { return }
        // One change per acknowledged key, as Redis counts server.dirty.
        context.addChanges(Int64(deleted.count - 1))
        context.propagate(deleted)
    }
}
