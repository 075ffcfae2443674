import SlipwayAuth
import SlipwayProto
import Testing

@Suite("Permissions: which role may send what")
struct PermissionsTests {
    static func identity(_ role: Role, _ name: String = "x") -> Identity { try! Identity(role: role, name: name) }

    static let table: [(Slipway_V1_MessageType, Set<Role>)] = [
        (.deployRequest, [.operator]),
        (.rollbackRequest, [.operator]),
        (.submitBuild, [.ci, .operator]),
        (.cancelBuild, [.ci, .operator]),
        (.logQuery, [.ci, .operator]),
        (.workRequest, [.worker]),
        (.buildResult, [.worker]),
        (.logChunk, [.worker]),
        (.uploadBegin, [.worker]),
        (.pieceData, [.worker]),
        (.pieceRequest, [.agent, .region]),
        (.agentRegister, [.agent]),
        (.regionReport, [.region]),
        (.replicationStatus, [.region]),
    ]

    @Test("the forged actions of issue 12 are refused for every role that must not do them")
    func roles() {
        for (type, allowed) in Self.table {
            for role in Role.allCases {
                let decision = Permissions.check(type, from: Self.identity(role))
                if allowed.contains(role) {
                    guard case .allowed = decision else { Issue.record("\(role) refused \(type): \(decision)"); continue }
                } else {
                    guard case .denied(let reason) = decision else { Issue.record("\(role) allowed \(type)"); continue }
                    #expect(reason.contains("\(role.rawValue)/x may not send"), "\(reason)")
                }
            }
        }
    }

    @Test("the object rules the handlers still owe are named")
    func objectRules() {
        #expect(Permissions.check(.buildResult, from: Self.identity(.worker)) == .allowed(object: .assignedWorker))
        #expect(Permissions.check(.logChunk, from: Self.identity(.worker)) == .allowed(object: .assignedWorker))
        #expect(Permissions.check(.cancelBuild, from: Self.identity(.ci)) == .allowed(object: .ciOnlyItsOwnJobs))
        #expect(Permissions.check(.regionReport, from: Self.identity(.region, "eu")) == .allowed(object: .ownRegion))
        #expect(Permissions.check(.agentRegister, from: Self.identity(.agent, "m1")) == .allowed(object: .boundMachine))
        #expect(Permissions.check(.submitBuild, from: Self.identity(.ci)) == .allowed(object: nil))
    }

    @Test("nobody may send what only servers send, and nothing passes without an identity")
    func serverOnlyAndAnonymous() {
        let serverOnly = Slipway_V1_MessageType.allCases.filter { Permissions.rule(for: $0).roles.isEmpty }
        #expect(serverOnly.contains(.workAssignment) && serverOnly.contains(.event) && serverOnly.contains(.deployReply))
        for type in serverOnly {
            for role in Role.allCases {
                #expect(Permissions.check(type, from: Self.identity(role)) != .allowed(object: nil))
            }
        }
        for type in Slipway_V1_MessageType.allCases {
            guard case .denied = Permissions.check(type, from: nil) else { Issue.record("\(type) allowed without identity"); continue }
        }
        #expect(Permissions.check(.UNRECOGNIZED(999), from: Self.identity(.operator)) != .allowed(object: nil))
    }
}
