import CSystemShims
import Dispatch
import Logging
import SlipwayMetrics
import SlipwayThreads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one thread per process that looks after every ``ConnectionGuard``'s
/// connections (system calls only: it touches no libzmq socket).
///
/// Every 20 ms it reads the process's resident set (one system call); while
/// no guarded socket has a connection open, nothing can flood it, so it looks
/// four times a second instead, and at once when a connection is accepted (an
/// idle agent's whole cost was this thread: 6 ms of CPU a second at 50 looks).
/// A look computes what libzmq holds for each guarded connection and cuts
/// those past their socket's bound, and, past the ceiling, the connection
/// holding the most. It comes once a second, and at once when the resident set
/// grew by 16 MiB since the last look. The heap in use (what the allocator has
/// handed out: unlike the resident set it grows also when freed memory is
/// reused or allocated memory is not touched yet, but reading it walks the
/// whole heap) is read at each look, and on every tick once the process is past
/// half its ceiling, where its growth by 16 MiB or its passing the ceiling
/// brings a look at once, as every tick did before. Below half the ceiling, a
/// flood into freed memory the allocator kept is seen at the next regular
/// look. The ceiling is ``ceiling`` above what was in use when the first guard
/// was made, plus ``allowancePerConnection`` per open connection. Freed memory
/// is returned to the system within a second of a cut or a disconnect, and
/// whenever the allocator keeps 64 MiB it does not use.
///
/// A look costs two system calls per connection, and a region's tracker holds a
/// connection per agent: past 1,000 connections the regular looks are spaced a
/// millisecond per connection (10 s at 10,000, about 2.5 % of a core) and looks
/// for growth a quarter of a millisecond per connection past 1,000; the ceiling
/// still brings one at once. (At 9,500 agents the region's memory was past a
/// ceiling that did not grow with connections, so it looked every 20 ms: 55 %
/// of its CPU went there; `docs/benchmarks.md`, *Tracker*.)
final class ConnectionWatch: Sendable {
    /// A guarded socket, as the watch sees it.
    struct Watched: Sendable {
        let ledger: DeliveryLedger
        let daemon: String
        let name: String
        let partialBound: Int
        let queuedBound: Int
        let logger: Logger
    }

    private struct State {
        /// Per guarded connection (guard id, descriptor): bytes delivered at the last look.
        var deliveredAtScan: [[Int]: UInt64] = [:]
        var next = 0
        var watched: [Int: Watched] = [:]
        var cuts: [Int: Int] = [:]
        var started = false
        var baseline: Int64 = 0
        /// Trims still to make: a cut or disconnect owes two, one at once and one a
        /// second later for what libzmq frees only once its I/O thread has closed the pipe.
        var trimsOwed = 0
        /// The watch sleeps a quiet tick: an accepted connection must wake it.
        var sleepingQuiet = false
    }

    static let shared = ConnectionWatch()
    /// Memory over the starting level past which the largest holder is cut whatever its socket's bound.
    static let ceiling: Int64 = 256 << 20
    /// What the ceiling rises by per guarded connection: what libzmq keeps for
    /// an idle one (batches and pipes; a region's agent measured about 64 KiB
    /// for its two), so a fleet that connects is not taken for a flood.
    static let allowancePerConnection: Int64 = 128 << 10
    /// What crosses a connection besides messages (greeting, handshake, pings), never counted as held.
    static let slack = 64 << 10
    /// A connection must hold at least this much to be cut for the ceiling.
    static let smallestCut = 256 << 10
    static let tick: Duration = .milliseconds(20)
    static let quietTick: Duration = .milliseconds(250)
    static let scanInterval: Duration = .seconds(1)
    static let growthTrigger: Int64 = 16 << 20
    /// Freed memory the allocator may keep before it is given back to the system.
    static let keptTrigger: Int64 = 64 << 20

    private let state = Mutex(State())
    /// Signalled when a guarded socket accepts a connection while the watch sleeps a quiet tick.
    private let accepted = DispatchSemaphore(value: 0)

    func add(_ watched: Watched) -> Int {
        let (id, start) = state.withLock { state in
            state.next += 1
            state.watched[state.next] = watched
            defer { state.started = true }
            if !state.started { state.baseline = slipway_heap_in_use() }
            return (state.next, !state.started)
        }
        if start {
            let thread = OwnedThread(name: "connection-watch")
            thread.execute { [self] in run() }
        }
        return id
    }

    /// A guarded socket accepted a connection: the watch goes back to looking every ``tick``.
    func connectionAccepted() {
        if state.withLock({ state in defer { state.sleepingQuiet = false }; return state.sleepingQuiet }) { accepted.signal() }
    }

    func remove(_ id: Int) { state.withLock { _ = $0.watched.removeValue(forKey: id) } }
    func cut(_ id: Int) -> Int { state.withLock { $0.cuts[id] ?? 0 } }
    func trimSoon() { state.withLock { $0.trimsOwed = 2 } }

    /// The local port and peer of an accepted TCP connection.
    static func identity(of descriptor: Int32) -> DeliveryLedger.Identity? {
        var port: Int32 = 0
        var peer = [CChar](repeating: 0, count: 128)
        guard slipway_socket_identity(descriptor, &port, &peer, 128) == 0 else { return nil }
        return DeliveryLedger.Identity(localPort: port, peer: String(decoding: peer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private func run() {
        // A flood fills memory at gigabytes per second while every core is busy copying it:
        // the watch must run the moment it wakes, not when the scheduler gets round to it.
        // Best effort: without CAP_SYS_NICE it runs at normal priority.
        _ = slipway_raise_thread_priority()
        var lastScan = ContinuousClock.now
        var lastTrim = ContinuousClock.now
        var inUse = slipway_heap_in_use()
        // Code, stacks and the like: resident memory the allocator does not account for.
        // Unknown until the resident set can be read (-1 means it could not).
        var residentAtScan = Self.known(slipway_resident_bytes())
        var keptAtStart = residentAtScan.map { $0 - inUse }
        var inUseAtScan = inUse
        while true {
            // The flag goes up before the look at the ledgers: a connection accepted after
            // the look finds it up and wakes the watch.
            let watched = state.withLock { state in
                state.sleepingQuiet = true
                return Array(state.watched.values)
            }
            let connections = watched.reduce(0) { $0 + $1.ledger.connections.count }
            let quiet = connections == 0
            if !quiet { state.withLock { $0.sleepingQuiet = false } }
            _ = accepted.wait(timeout: .now() + .milliseconds(Int((quiet ? Self.quietTick : Self.tick) / .milliseconds(1))))
            state.withLock { $0.sleepingQuiet = false }
            let now = ContinuousClock.now
            let (baseline, trimsOwed) = state.withLock { ($0.baseline, $0.trimsOwed) }
            let ceiling = Self.ceiling + Int64(connections) * Self.allowancePerConnection
            // A tick reads only the resident set (one system call); the allocator's count walks
            // every arena under its lock (a tenth of a millisecond in a busy agent, 50 times a
            // second in every process was 4.6 % of the distribution benchmark's CPU), so it is
            // read only when a look or a trim is due, the resident set grew, or it is past half the ceiling.
            let resident = Self.known(slipway_resident_bytes())
            if let resident, keptAtStart == nil { keptAtStart = resident - inUse }
            // Growth counts from the lowest point since the last look (a cut frees a lot at once).
            if let resident { residentAtScan = min(residentAtScan ?? resident, resident) }
            let (interval, growthGap) = Self.spacing(connections: connections)
            let lookDue = now - lastScan >= interval
            let grew = now - lastScan >= growthGap && resident.map { $0 - (residentAtScan ?? $0) > Self.growthTrigger } == true
            // What the heap holds is what is resident beyond the process's start, plus what it
            // has allocated and not yet touched (libzmq sizes a large frame's buffer up front:
            // 37 connections each filling a 4 MiB frame hold up to 148 MiB of it). So from half
            // the ceiling on, and whenever the resident set cannot be read, the heap is counted
            // every tick, as before: a flood meets the same cuts at the same counts.
            let heapBeyondStart = resident.flatMap { resident in keptAtStart.map { resident - $0 } }
            let nearCeiling = heapBeyondStart.map { $0 - baseline > ceiling / 2 } ?? true
            // Freed memory goes back to the system: after cuts and disconnects, and whenever
            // the allocator keeps 64 MiB more than it has handed out (judged by the last count).
            let keptUnused = { heapBeyondStart.map { $0 - inUse > Self.keptTrigger } == true }
            let trimDue = now - lastTrim >= .seconds(1) && (trimsOwed > 0 || keptUnused())
            guard lookDue || grew || nearCeiling || trimDue else { continue }
            inUse = slipway_heap_in_use()
            inUseAtScan = min(inUseAtScan, inUse)
            let heapGrew = inUse - inUseAtScan > Self.growthTrigger && now - lastScan >= growthGap
            let overCeiling = inUse - baseline > ceiling
            if lookDue || grew || heapGrew || overCeiling {
                if scan(overCeiling: overCeiling) { trimSoon() }
                lastScan = now
                residentAtScan = Self.known(slipway_resident_bytes())
                inUseAtScan = slipway_heap_in_use()
            }
            if trimDue, trimsOwed > 0 || keptUnused() {
                _ = slipway_trim_memory()
                state.withLock { $0.trimsOwed = max(0, $0.trimsOwed - 1) }
                lastTrim = now
            }
        }
    }

    /// A reading, or nil for -1 (it could not be read).
    private static func known(_ bytes: Int64) -> Int64? { bytes >= 0 ? bytes : nil }

    /// How far apart regular looks, and looks for growth, are with `connections` open.
    static func spacing(connections: Int) -> (regular: Duration, growth: Duration) {
        let beyond = max(0, connections - 1_000)
        return (max(scanInterval, .milliseconds(connections)), .microseconds(beyond * 250))
    }

    /// One look at every guarded connection. - Returns: whether it cut any.
    private func scan(overCeiling: Bool) -> Bool {
        let watched = state.withLock { $0.watched }
        var largest: (id: Int, descriptor: Int32, held: Int, identity: DeliveryLedger.Identity)?
        var cutAny = false
        var delivered: [[Int]: UInt64] = [:]
        let before = state.withLock { $0.deliveredAtScan }
        for (id, socket) in watched {
            // Drained lately: what a connection holds is a message in progress.
            let bound = socket.ledger.drained(within: .milliseconds(250)) ? socket.partialBound : socket.queuedBound
            for (descriptor, identity) in socket.ledger.connections {
                guard let held = held(descriptor, socket.ledger) else { continue }
                let key = [id, Int(descriptor)]
                delivered[key] = socket.ledger.delivered(descriptor)
                if held > bound {
                    cutAny = cut(descriptor, identity, id, socket, held: held, reason: "more than its socket's bound of \(bound) bytes") || cutAny
                } else if held > largest?.held ?? Self.smallestCut, before[key] == delivered[key] {
                    // Only a connection that delivered nothing since the last look: one message that
                    // does not end, not an upload in full flow.
                    largest = (id, descriptor, held, identity)
                }
            }
        }
        state.withLock { $0.deliveredAtScan = delivered }
        // Past the ceiling: the largest such holder goes.
        if overCeiling, let largest, let socket = watched[largest.id] {
            cutAny = cut(largest.descriptor, largest.identity, largest.id, socket, held: largest.held,
                         reason: "the most while the process is past its memory ceiling") || cutAny
        }
        return cutAny
    }

    /// What libzmq holds for the connection, beyond the slack; nil when it cannot be read.
    private func held(_ descriptor: Int32, _ ledger: DeliveryLedger) -> Int? {
        guard let arrived = Self.arrived(descriptor) else { return nil }
        return Int(clamping: ledger.held(descriptor, arrived: arrived)) - Self.slack
    }

    /// Bytes the kernel received on the connection and libzmq has read.
    static func arrived(_ descriptor: Int32) -> UInt64? {
        let received = slipway_tcp_bytes_received(descriptor)
        let unread = slipway_unread_bytes(descriptor)
        guard received >= 0, unread >= 0, received >= Int64(unread) else { return nil }
        return UInt64(received - Int64(unread))
    }

    private func cut(_ descriptor: Int32, _ identity: DeliveryLedger.Identity, _ id: Int, _ socket: Watched,
                     held: Int, reason: String) -> Bool {
        // The descriptor must still be that connection (not closed and reused meanwhile).
        guard Self.identity(of: descriptor) == identity else { return false }
        shutdown(descriptor, Int32(SHUT_RDWR))
        socket.ledger.forget(descriptor)
        let total = state.withLock { state in
            state.cuts[id, default: 0] += 1
            return state.cuts[id]!
        }
        SlipwayMetrics.connectionCut(daemon: socket.daemon, socket: socket.name)
        socket.logger.warning("cut a connection holding too much in unread or unfinished messages", metadata: [
            "socket": "\(socket.name)", "peer": "\(identity.peer)", "held_bytes": "\(held)", "why": "\(reason)",
            "connections_cut": "\(total)"])
        return true
    }
}
