/// Who is making a request, once the console has checked: a signed-in user
/// (with the session's CSRF token) or the holder of a bearer token.
public struct Viewer: Sendable, Equatable {
    /// The account's name in the users file; recorded as the actor of what it does.
    public let name: String
    public let role: ConsoleRole
    /// The token forms must carry back; nil for bearer-token requests, which no browser sends by itself.
    public let csrfToken: String?

    public var isOperator: Bool { role == .operator }
}
