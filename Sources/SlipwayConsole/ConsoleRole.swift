/// What a console user may do: read everything (`viewer`), or also deploy,
/// roll back and steer rollouts (`operator`).
public enum ConsoleRole: String, Sendable, CaseIterable, Comparable {
    case viewer
    case `operator`

    public static func < (lhs: ConsoleRole, rhs: ConsoleRole) -> Bool {
        lhs == .viewer && rhs == .operator
    }
}
