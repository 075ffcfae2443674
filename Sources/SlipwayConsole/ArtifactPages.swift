import SlipwayJSON
import SlipwayProto

/// The Artifacts pages: the newest builds' outputs, and one artifact's provenance and replicas.
enum ArtifactPages {
    static func list(_ artifacts: [Slipway_V1_ArtifactInfo], name: String, viewer: Viewer) -> String {
        let rows = artifacts.map { artifact in
            """
            <tr><td>\(HTML.digestLink(artifact.digest))</td><td>\(HTML.escape(artifact.name))</td><td>\(size(artifact.size))</td>
            <td>\(artifact.jobID.isEmpty ? "—" : "<a href=\"/builds/\(HTML.escape(artifact.jobID))\">\(HTML.escape(artifact.jobID))</a>")</td>
            <td><code>\(HTML.escape(String(artifact.commit.prefix(12))))</code></td><td>\(HTML.escape(artifact.originRegion))</td>
            <td>\(replicaSummary(artifact))</td><td>\(HTML.badge(artifact.deployableAtUnixMicros > 0 ? "deployable" : "replicating"))</td>
            <td>\(HTML.time(artifact.createdAtUnixMicros))</td></tr>
            """
        }.joined(separator: "\n")
        let table = artifacts.isEmpty ? "<p class=\"empty\">No artifacts.</p>" : """
            <table id="artifacts"><thead><tr><th>Digest</th><th>Name</th><th>Size</th><th>Job</th><th>Commit</th><th>Built in</th>
            <th>Replicas</th><th>State</th><th>Created</th></tr></thead><tbody>\(rows)</tbody></table>
            """
        let layout = PageLayout(title: "Artifacts", viewer: viewer, section: "artifacts",
                                live: .init(eventPrefixes: ["artifact_", "replica_"]))
        return layout.render("""
            <form method="get" action="/artifacts" class="filters"><input name="name" placeholder="artifact name" value="\(HTML.escape(name))">
            <button>Filter</button></form><section id="artifact-list" data-live>\(table)</section>
            """)
    }

    static func artifact(_ artifact: Slipway_V1_ArtifactInfo, builder: String, viewer: Viewer) -> String {
        let details: [(String, String)] = [
            ("Digest", "<code>sha256:\(HTML.escape(artifact.digest))</code>"),
            ("Name", HTML.escape(artifact.name)),
            ("Size", size(artifact.size) + " in \(artifact.pieceCount) pieces "
                + (artifact.piecesByContent ? "cut by content, up to " : "of ") + size(UInt64(artifact.pieceSize))),
            ("Repository", HTML.escape(artifact.repoURL)),
            ("Commit", "<code>\(HTML.escape(artifact.commit))</code>"),
            ("Job", artifact.jobID.isEmpty ? "—" : "<a href=\"/builds/\(HTML.escape(artifact.jobID))\">\(HTML.escape(artifact.jobID))</a>"),
            ("Builder", HTML.escape(builder.isEmpty ? "—" : builder)),
            ("Recipe", artifact.recipe.isEmpty ? "—" : "<code>\(HTML.escape(artifact.recipe))</code>"),
            ("Built in region", HTML.escape(artifact.originRegion)),
            ("Created", HTML.time(artifact.createdAtUnixMicros)),
            ("Deployable", artifact.deployableAtUnixMicros > 0 ? "since \(HTML.time(artifact.deployableAtUnixMicros))" : "not yet: still replicating"),
        ]
        let replicas = artifact.replicas.map { replica in
            """
            <tr data-region="\(HTML.escape(replica.region))"><td>\(HTML.escape(replica.region))</td><td>\(HTML.badge(replica.state.word))</td>
            <td>\(replica.piecesDone)/\(replica.piecesTotal)</td><td>\(HTML.escape(replica.error))</td></tr>
            """
        }.joined()
        var deploy = ""
        if viewer.isOperator, artifact.deployableAtUnixMicros > 0 {
            deploy = """
                <h2>Deploy</h2>
                <form method="get" action="/deploy" class="action" id="deploy-form">
                <input type="hidden" name="artifact" value="\(HTML.escape(artifact.digest))">
                <label>Service <input name="service" value="\(HTML.escape(artifact.name))" required></label>
                <label>Plan <input name="plan" list="plans" placeholder="the coordinator's default"></label>
                <datalist id="plans"><option value="all"><option value="canary"></datalist>
                <label>Only region <input name="region" placeholder="every region (global)"></label>
                <label><input type="checkbox" name="new_service"> a new service (no machine has reported it yet)</label>
                <button id="deploy-globally">Deploy build \(HTML.escape(artifact.name)) sha256:\(HTML.escape(String(artifact.digest.prefix(12)))) globally…</button>
                </form>
                """
        }
        let layout = PageLayout(title: "Artifact \(artifact.name)", viewer: viewer, section: "artifacts",
                                live: .init(eventPrefixes: ["artifact_", "replica_"], subjectKey: "artifact_digest", subject: artifact.digest))
        return layout.render("""
            <section id="artifact-summary" data-live><table class="details">\(details.map { "<tr><th>\($0.0)</th><td>\($0.1)</td></tr>" }.joined())</table>
            <h2>Replicas</h2><table id="replicas"><thead><tr><th>Region</th><th>State</th><th>Pieces</th><th>Failure</th></tr></thead>
            <tbody>\(replicas)</tbody></table></section>
            <section id="artifact-deploy" data-live>\(deploy)</section>
            """)
    }

    static func replicaSummary(_ artifact: Slipway_V1_ArtifactInfo) -> String {
        artifact.replicas.map { "\(HTML.escape($0.region)) \($0.state.word)" }.joined(separator: ", ")
    }

    static func size(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) B" : "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
