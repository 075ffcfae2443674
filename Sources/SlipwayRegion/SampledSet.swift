/// A set that also hands out random members in constant time: the tracker picks
/// a peer list's few machines out of thousands without visiting them all.
struct SampledSet<Element: Hashable> {
    private(set) var members: [Element] = []
    private var positions: [Element: Int] = [:]

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }

    func contains(_ element: Element) -> Bool { positions[element] != nil }

    mutating func insert(_ element: Element) {
        guard positions[element] == nil else { return }
        positions[element] = members.count
        members.append(element)
    }

    mutating func remove(_ element: Element) {
        guard let position = positions.removeValue(forKey: element) else { return }
        let last = members.removeLast()
        if position < members.count {
            members[position] = last
            positions[last] = position
        }
    }

    /// Up to `limit` distinct members that pass `usable`, uniformly at random.
    /// Random probes first (cheap when most members are usable), then one shuffled pass.
    func sample(_ limit: Int, where usable: (Element) -> Bool, using random: inout some RandomNumberGenerator) -> [Element] {
        guard limit > 0, !members.isEmpty else { return [] }
        var chosen: [Element] = []
        var seen: Set<Element> = []
        if members.count > limit * 4 {
            for _ in 0..<(limit * 8) where chosen.count < limit {
                let member = members[Int.random(in: 0..<members.count, using: &random)]
                guard seen.insert(member).inserted, usable(member) else { continue }
                chosen.append(member)
            }
            if chosen.count == limit { return chosen }
        }
        for member in members.shuffled(using: &random) where chosen.count < limit && !seen.contains(member) && usable(member) {
            chosen.append(member)
        }
        return chosen
    }
}
