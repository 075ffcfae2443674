import SlipwayCore
import SlipwayAgent

/// One machine of the simulated fleet: the download side of `PieceDownload` and
/// the serving side of `PieceServer`, with the agent's real ``PiecePicker``,
/// ``PieceRequests`` and ``UploadSlots`` deciding, and the message handling of
/// those two I/O shells written again here over virtual time instead of sockets (see
/// `docs/benchmarks.md` for what is and is not modelled).
final class SimulatedAgent {
    /// What a machine holds of the artifact, as a `PieceHave` says it.
    struct Holding {
        var pieces: Set<Int> = []
        var complete = false

        mutating func merge(_ other: Holding) {
            complete = complete || other.complete
            pieces = complete ? [] : pieces.union(other.pieces)
        }
    }

    let index: Int
    let name: String
    let region: Int
    var alive = true
    /// When the target reached it; nil before.
    var startedAt: Double?
    var completeAt: Double?

    // The download (PieceDownload).
    var picker: PiecePicker?
    var manifestAt: Double?
    var peersKnown = false
    var swarm: Set<String>
    /// The requests out, made again for the pieces' lengths when the manifest comes.
    var requests = PieceRequests(lengths: [], slowAfter: DistributionSimulation.slowAfter, timeout: DistributionSimulation.requestTimeout)
    var known: Set<String> = []
    /// Peers this download holds a connection to (it hears their haves on it).
    var connections: Set<String> = []
    var seedConnected = false
    var interest = PeerInterest()
    var greetedAt: Double?
    var lastPeerList: Double?
    var lastHeartbeat: Double?
    /// Pieces are verified one at a time, on the agent's own thread.
    var verifyingUntil = 0.0
    var fromSeed = 0, fromPeers = 0, timeouts = 0, slowRequests = 0

    // The server (PieceServer).
    var subscribers: [String: Double] = [:]
    var untold: [String: Holding] = [:]
    var slots: UploadSlots<String>
    /// Pieces being sent to each downloader now.
    var sending: [String: Int] = [:]

    init(index: Int, region: Int, uploadSlots: Int) {
        self.index = index
        self.name = "m\(index)"
        self.region = region
        self.swarm = [name]
        self.slots = UploadSlots(slots: max(1, uploadSlots))
    }

    /// Whether it holds the artifact or is fetching it (its server answers for it).
    var isInSwarm: Bool { startedAt != nil }

    var isComplete: Bool { completeAt != nil }

    /// What it holds, as its server tells subscribers.
    var holding: Holding {
        isComplete ? Holding(complete: true) : Holding(pieces: picker?.held ?? [])
    }
}
