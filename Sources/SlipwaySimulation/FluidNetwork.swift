/// Hosts whose links are capped per direction, carrying transfers as fluid:
/// the transfers leaving one host share its upload cap equally, those arriving
/// share its download cap, and each runs at the smaller of its two shares (as
/// a host's flow-fair qdisc shares its uplink, and the distribution benchmark's
/// `--egress per-peer` does; through one drop-tail queue BBR flows get far less
/// even shares; a max-min fair share would give a little more where one side
/// is idle). Rates change only when a transfer starts or ends, so a run costs
/// a few operations per transfer.
///
/// Hosts may also share a CPU pool (the distribution benchmark runs every
/// agent on one machine's cores): the transfers arriving at a pool's hosts
/// share its capacity too, in bytes per second of what its cores can receive.
struct FluidNetwork {
    struct Host {
        /// Bytes per second.
        let up: Double, down: Double
        /// The CPU pool it receives through, if any.
        let pool: Int?
        var sending: Set<Int> = []
        var receiving: Set<Int> = []
        /// Bytes sent in all.
        var sent: Double = 0
    }

    struct Transfer {
        let from: Int, to: Int
        let bytes: Double
        var remaining: Double
        var rate: Double = 0
        var since: Double
        /// Bumped on every rate change: a completion scheduled before it is stale.
        var version = 0
    }

    /// When a transfer will end at its current rate (schedule it; it may go stale).
    struct Completion {
        let transfer: Int
        let version: Int
        let at: Double
    }

    struct Pool {
        /// Bytes per second the pool's cores can take in, in all.
        let capacity: Double
        var receiving: Set<Int> = []
    }

    private(set) var hosts: [Host] = []
    private(set) var pools: [Pool] = []
    private(set) var transfers: [Int: Transfer] = [:]
    private var nextID = 0

    /// Adds a host; `up` and `down` in bytes per second.
    mutating func addHost(up: Double, down: Double, pool: Int? = nil) -> Int {
        hosts.append(Host(up: up, down: down, pool: pool))
        return hosts.count - 1
    }

    /// Adds a CPU pool taking in `capacity` bytes per second in all.
    mutating func addPool(capacity: Double) -> Int {
        pools.append(Pool(capacity: capacity))
        return pools.count - 1
    }

    /// The transfers whose rate a change at `transfer`'s ends can alter.
    private func neighbours(of transfer: Transfer) -> Set<Int> {
        var ids = hosts[transfer.from].sending.union(hosts[transfer.to].receiving)
        if let pool = hosts[transfer.to].pool { ids.formUnion(pools[pool].receiving) }
        return ids
    }

    /// Starts sending `bytes` from `from` to `to`.
    mutating func start(from: Int, to: Int, bytes: Double, now: Double) -> (id: Int, completions: [Completion]) {
        let id = nextID
        nextID += 1
        let transfer = Transfer(from: from, to: to, bytes: bytes, remaining: bytes, since: now)
        transfers[id] = transfer
        hosts[from].sending.insert(id)
        hosts[to].receiving.insert(id)
        if let pool = hosts[to].pool { pools[pool].receiving.insert(id) }
        return (id, rerate(neighbours(of: transfer), now: now))
    }

    /// The transfer whose completion `completion` announced, if it is still
    /// current (it ended, removed), and the completions of those it sped up.
    mutating func finish(_ completion: Completion, now: Double) -> (Transfer, [Completion])? {
        guard let transfer = transfers[completion.transfer], transfer.version == completion.version else { return nil }
        remove(completion.transfer)
        hosts[transfer.from].sent += transfer.bytes
        return (transfer, rerate(neighbours(of: transfer), now: now))
    }

    /// Ends every transfer to or from `host` (it failed), counting what was sent.
    mutating func cut(_ host: Int, now: Double) -> (ended: [(id: Int, transfer: Transfer)], completions: [Completion]) {
        let ids = hosts[host].sending.union(hosts[host].receiving)
        var ended: [(Int, Transfer)] = []
        var touched: Set<Int> = []
        for id in ids.sorted() {
            var transfer = transfers[id]!
            settle(&transfer, now: now)
            hosts[transfer.from].sent += transfer.bytes - transfer.remaining
            remove(id)
            ended.append((id, transfer))
            touched.formUnion(neighbours(of: transfer))
        }
        return (ended, rerate(touched, now: now))
    }

    private mutating func remove(_ id: Int) {
        guard let transfer = transfers.removeValue(forKey: id) else { return }
        hosts[transfer.from].sending.remove(id)
        hosts[transfer.to].receiving.remove(id)
        if let pool = hosts[transfer.to].pool { pools[pool].receiving.remove(id) }
    }

    private func settle(_ transfer: inout Transfer, now: Double) {
        transfer.remaining = max(0, transfer.remaining - transfer.rate * (now - transfer.since))
        transfer.since = now
    }

    private mutating func rerate(_ ids: Set<Int>, now: Double) -> [Completion] {
        var completions: [Completion] = []
        for id in ids.sorted() {
            guard var transfer = transfers[id] else { continue }
            settle(&transfer, now: now)
            let from = hosts[transfer.from], to = hosts[transfer.to]
            var rate = min(from.up / Double(from.sending.count), to.down / Double(to.receiving.count))
            if let pool = to.pool { rate = min(rate, pools[pool].capacity / Double(pools[pool].receiving.count)) }
            guard rate != transfer.rate || transfer.version == 0 else {
                transfers[id] = transfer
                continue
            }
            transfer.rate = rate
            transfer.version += 1
            transfers[id] = transfer
            completions.append(Completion(transfer: id, version: transfer.version, at: now + transfer.remaining / rate))
        }
        return completions
    }
}
