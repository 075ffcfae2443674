/// How many refusals one source may write to the audit log per minute: pure.
///
/// Every privileged action is recorded, and so is every refusal up to
/// ``perSource`` per source in a minute; past that a source's refusals are only
/// counted, and one summary row per source says how many when the minute ends.
/// A source is the identity refused, or the region that reported refusals (a
/// region whose key was stolen could otherwise fill the table as fast as its
/// reports are acknowledged). A row that counts refusals (``AuditRecord/counts``)
/// is written whatever the budget, once per source and window; the counts of
/// later ones go into the window's summary. So a key that hammers the
/// coordinator costs at most ``perSource`` + 2 rows per window (the window is
/// fixed, opened by the first refusal), and no refusal goes uncounted.
struct AuditBudget: Equatable {
    static let perSource = 100
    static let window: Duration = .seconds(60)
    /// Sources told apart in one window; refusals of any more share one budget.
    static let sourcesTracked = 10_000
    static let otherSources = "(other sources)"

    private var windowEnds: ContinuousClock.Instant?
    private var written: [String: Int] = [:]
    private var counted: [String: Int] = [:]
    /// Sources whose counting row this window was written.
    private var countsWritten: Set<String> = []

    /// The rows of `records` to write now: every one that is not a refusal, the
    /// refusals still within their source's budget, each source's first counting
    /// row of the window, and the summaries of a window that ended.
    mutating func admit(_ records: [AuditRecord], now: ContinuousClock.Instant) -> [AuditRecord] {
        var rows = closeWindow(now: now)
        for record in records {
            guard record.outcome == .refused else {
                rows.append(record)
                continue
            }
            if windowEnds == nil { windowEnds = now + Self.window }
            let tracked = written[record.source] != nil || countsWritten.contains(record.source)
                || written.count + countsWritten.count < Self.sourcesTracked
            let source = tracked ? record.source : Self.otherSources
            if let counts = record.counts {
                if countsWritten.insert(source).inserted {
                    rows.append(record)
                } else {
                    counted[source, default: 0] += counts
                }
            } else if written[source, default: 0] < Self.perSource {
                written[source, default: 0] += 1
                rows.append(record)
            } else {
                counted[source, default: 0] += 1
            }
        }
        return rows
    }

    /// Whether a minute with refusals only counted has ended, so its summary should be written.
    func summaryDue(now: ContinuousClock.Instant) -> Bool {
        guard let windowEnds else { return false }
        return now >= windowEnds && !counted.isEmpty
    }

    /// The summary rows of a window that ended by `now` (then a new one starts with the next refusal).
    private mutating func closeWindow(now: ContinuousClock.Instant) -> [AuditRecord] {
        guard let ends = windowEnds, now >= ends else { return [] }
        let summaries = counted.sorted { $0.key < $1.key }.map { source, count in
            let named = source.isEmpty ? "unauthenticated peers" : source
            return AuditRecord(identityText: source == Self.otherSources ? "" : source, action: "refusals_not_recorded", object: named,
                               outcome: .refused,
                               detail: "\(count) more refusal(s) from \(named) in a minute, past the \(Self.perSource) recorded one by one")
        }
        self = AuditBudget()
        return summaries
    }
}
