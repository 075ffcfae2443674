/// Why a key, certificate or trust directory could not be used; `message` names the file or value.
public struct AuthError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
