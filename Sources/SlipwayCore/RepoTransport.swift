/// How git would reach a repository address, decided the way git decides it,
/// so the coordinator can refuse at submit what an operator does not allow.
/// Remote-helper addresses (`ext::…`, `fd::…`, any `NAME::…`) run commands
/// or reach outside git's transports, and are never accepted.
public enum RepoTransport: String, CaseIterable, Sendable, Hashable {
    case https
    case http
    case ssh
    case git
    /// A path on the worker (`/srv/repo`, `file:///srv/repo`).
    case file

    /// What a coordinator accepts unless told otherwise.
    public static let defaultAllowed: Set<RepoTransport> = [.https, .ssh, .git, .file]

    /// The transport `address` uses. - Throws: ``InvalidValue`` when it has none
    /// Slipway accepts (a remote helper, an unknown scheme, a relative path).
    public init(address: String) throws(InvalidValue) {
        func refuse(_ rule: String) -> InvalidValue { InvalidValue(kind: "repository address", text: address, rule: rule) }
        // git's rule: NAME::ADDRESS with NAME a transport name is a remote helper. (`::` later,
        // as in ssh://[::1]/repo, is not.)
        if let helper = address.firstRange(of: "::"), Self.isTransportName(address[..<helper.lowerBound]) {
            let name = address[..<helper.lowerBound]
            throw refuse("'\(name.prefix(20))::' is a git remote helper (it can run commands); use https, ssh, git or a path")
        }
        if let separator = address.firstRange(of: "://") {
            let scheme = String(address[..<separator.lowerBound])
            guard scheme == scheme.lowercased() else {
                throw refuse("git reads '\(scheme.prefix(20))://' as a remote helper's name (schemes are case-sensitive); write it in lowercase")
            }
            switch scheme {
            case "https": self = .https
            case "http": self = .http
            case "ssh", "git+ssh", "ssh+git": self = .ssh
            case "git": self = .git
            case "file": self = .file
            default: throw refuse("'\(scheme.prefix(20))://' is not a transport Slipway builds from (https, http, ssh, git, file)")
            }
            return
        }
        if address.hasPrefix("/") {
            self = .file
            return
        }
        // git's scp-like form: a colon before any slash, as in git@host:org/repo.git.
        if let colon = address.firstIndex(of: ":"), !address[..<colon].contains("/"), colon != address.startIndex {
            self = .ssh
            return
        }
        throw refuse("a relative path depends on the worker's folder; give an absolute path or a URL")
    }

    /// `[A-Za-z][A-Za-z0-9+.-]*`: what git takes for a transport's name.
    static func isTransportName(_ text: Substring) -> Bool {
        guard let first = text.utf8.first, SafeText.isAlphanumeric(first), first > UInt8(ascii: "9") else { return false }
        return text.utf8.allSatisfy { SafeText.isAlphanumeric($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// Parses `https,ssh,git,file` (a flag's value). - Throws: naming the unknown one.
    public static func parseList(_ text: String) throws(InvalidValue) -> Set<RepoTransport> {
        var result: Set<RepoTransport> = []
        for item in text.split(separator: ",").map({ String($0.filter { $0 != " " }) }) where !item.isEmpty {
            guard let transport = RepoTransport(rawValue: item.lowercased()) else {
                throw InvalidValue(kind: "repository transport", text: item,
                                   rule: "one of \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            result.insert(transport)
        }
        guard !result.isEmpty else { throw InvalidValue(kind: "repository transport list", text: text, rule: "name at least one") }
        return result
    }
}
