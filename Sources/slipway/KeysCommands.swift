import ArgumentParser
import SlipwayAuth

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "CURVE key pairs: every Slipway process proves who it is with one.",
        subcommands: [KeysNewCommand.self, KeysShowCommand.self])
}

struct KeysNewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Make a key pair: ROLE-NAME.cert (public; copy it into the trust folder of every daemon that must admit it) and ROLE-NAME.secret (mode 0600; keep it on the one machine that uses it).")

    @Option(help: "What the key may do: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).")
    var role: String

    @Option(help: "Its name (1-64 of a-z, 0-9, '.', '_', '-'): a region's name for a region key, a machine id for an agent.")
    var name: String

    @Option(help: "The folder to write into (it must exist; existing keys are never overwritten).")
    var out: String

    func run() throws {
        guard let role = Role(rawValue: role) else {
            throw ValidationError("--role: \"\(role)\" is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let identity: Identity
        do { identity = try Identity(role: role, name: name) } catch { throw ValidationError("--name: \(error.message)") }
        let paths: [String]
        do {
            paths = try Certificate.generate(for: identity).write(to: out)
        } catch let error as AuthError {
            throw CommandFailure("--out: \(error.message)")
        }
        let certificate = try Certificate.load(path: paths[0])
        print("identity: \(identity)")
        print("public key: \(certificate.publicKey.z85)")
        print("certificate: \(paths[0])")
        print("secret: \(paths[1])")
    }
}

struct KeysShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print a certificate's (or secret file's) role, name and public key; never the secret.")

    @Argument(help: "A .cert or .secret file.")
    var file: String

    func run() throws {
        let certificate: Certificate
        do { certificate = try Certificate.load(path: file) } catch { throw CommandFailure(error.message) }
        print("role: \(certificate.identity.role.rawValue)")
        print("name: \(certificate.identity.name)")
        print("public key: \(certificate.publicKey.z85)")
        print("holds secret key: \(certificate.secretKey == nil ? "no" : "yes")")
    }
}
