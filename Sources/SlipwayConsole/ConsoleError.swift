public import Hummingbird
public import SlipwayJSON
import SlipwayProducer

/// Why the console refused or could not answer a request: an HTTP status, a
/// code a script can switch on, and one line a person can read.
public struct ConsoleError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status of the reply.
    public let status: HTTPResponse.Status
    /// `not_signed_in`, `forbidden`, `csrf`, `not_found`, `bad_input`, `refused`, `unavailable`, …
    public let code: String
    /// One line for the user.
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// `{"error": {"code", "message", "status"}}`: the body of every failed API call.
    public var json: JSONValue {
        .object(["error": .object(["code": .string(code), "message": .string(message), "status": .integer(Int64(status.code))])])
    }

    static let notSignedIn = ConsoleError(.unauthorized, "not_signed_in", "sign in first (or send Authorization: Bearer TOKEN)")
    static let viewerOnly = ConsoleError(.forbidden, "forbidden", "this needs the operator role; this account is a viewer")
    static let csrf = ConsoleError(.forbidden, "csrf", "missing or wrong CSRF token: reload the page and try again")

    static func badInput(_ message: String) -> ConsoleError { ConsoleError(.badRequest, "bad_input", message) }
    static func notFound(_ message: String) -> ConsoleError { ConsoleError(.notFound, "not_found", message) }

    /// What a failed coordinator call means to an HTTP client.
    init(_ error: ProducerError) {
        switch (error.code, error.serverCode) {
        case (.rejected, .notFound): self.init(.notFound, "not_found", error.description)
        case (.rejected, .invalidArgument): self.init(.badRequest, "bad_input", error.description)
        case (.rejected, .failedPrecondition): self.init(.conflict, "refused", error.description)
        case (.rejected, .permissionDenied): self.init(.forbidden, "permission_denied", "the coordinator refused the console's key: \(error.description)")
        case (.rejected, .unavailable), (.unreachable, _): self.init(.serviceUnavailable, "unavailable", error.description)
        case (.timedOut, _): self.init(.gatewayTimeout, "timed_out", error.description)
        default: self.init(.badGateway, "coordinator_error", error.description)
        }
    }
}
