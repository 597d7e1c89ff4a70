// ReplicaLink: one attached replica, served by its own thread (placeholder until the thread lands).
import Synchronization
import TallyPlatform

/// One replica connection after SYNC/PSYNC.
final class ReplicaLink: Sendable {
    /// The replica's client id (CLIENT LIST, CLIENT KILL ID).
    let clientID: Int64
    /// Its socket.
    let descriptor: Int32
    /// Wakes the replica's thread (new stream bytes, close requests).
    let wakeDescriptor: Int32
    /// The address INFO shows (`REPLCONF ip-address`, else the peer's IP).
    let announcedAddress: String
    /// `REPLCONF listening-port` (0 when not sent, as in Redis).
    let listeningPort: Int
    /// The highest offset the replica acknowledged (`REPLCONF ACK`; Redis's repl_ack_off).
    let ackedOffset = Atomic<Int64>(0)
    /// The replica's AOF fsynced offset (`REPLCONF ACK <off> FACK <aofoff>`; Redis 7.2 replicas).
    let fsyncedOffset = Atomic<Int64>(0)
    /// When the last ACK arrived (ms; Redis's repl_ack_time).
    let ackTimeMilliseconds: Atomic<Int64>
    /// Set when the replica passed `client-output-buffer-limit replica`.
    let outputLimitReached = Atomic<Bool>(false)
    private let logger: ServerLogger

    init(clientID: Int64, descriptor: Int32, wakeDescriptor: Int32, logger: ServerLogger,
         announcedAddress: String, listeningPort: Int, nowMilliseconds: Int64) {
        self.clientID = clientID
        self.announcedAddress = announcedAddress
        self.listeningPort = listeningPort
        ackTimeMilliseconds = Atomic(nowMilliseconds)
        self.descriptor = descriptor
        self.wakeDescriptor = wakeDescriptor
        self.logger = logger
    }

    /// Wakes the thread.
    func wake() { Posix.signalEventFD(wakeDescriptor) }

    /// Logs through the server's logger.
    func log(_ level: LogLevel, _ message: String) { logger.log(level, message) }
}
