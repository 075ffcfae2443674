import Foundation
import SlipwayJSON
import SlipwayProto

/// The Services pages: every service at a glance, and one service with its
/// targets, machines per region, rollout wave by wave, history and controls.
enum ServicePages {
    static func list(_ services: [Slipway_V1_ServiceStatus], viewer: Viewer) -> String {
        let rows = services.map { service in
            let global = service.targets.first { $0.region.isEmpty }
            let pinned = service.targets.filter { !$0.region.isEmpty }.map { "\(HTML.escape($0.region)) pinned" }
            let rollout = service.rollouts.first.map { "\(HTML.badge($0.state.word)) wave \($0.wave + 1)/\($0.waves.count)" } ?? "—"
            let regions = service.regions.compactMap { region -> String? in
                let counts = region.counts.filter { $0.service == service.service }
                guard !counts.isEmpty else { return nil }
                let running = counts.filter { $0.state == .running }.reduce(0) { $0 + $1.machines }
                let total = counts.reduce(0) { $0 + $1.machines }
                let failing = region.failures.filter { $0.service == service.service }.count
                return "\(HTML.escape(region.region)) \(running)/\(total) running" + (failing > 0 ? " <span class=\"failure\">\(failing) failing</span>" : "")
            }
            return """
            <tr data-service="\(HTML.escape(service.service))"><td><a href="/services/\(HTML.urlComponent(service.service))">\(HTML.escape(service.service))</a></td>
            <td>\(global.map { HTML.digestLink($0.artifactDigest) + " v\($0.version)" } ?? "no global target")\(pinned.isEmpty ? "" : "; " + pinned.joined(separator: ", "))</td>
            <td>\(rollout)</td><td>\(regions.joined(separator: "<br>"))</td></tr>
            """
        }.joined(separator: "\n")
        let table = services.isEmpty ? "<p class=\"empty\">No services yet: none has a target and no machine has reported one.</p>" : """
            <table id="services"><thead><tr><th>Service</th><th>Target</th><th>Rollout</th><th>Machines</th></tr></thead><tbody>\(rows)</tbody></table>
            """
        let layout = PageLayout(title: "Services", viewer: viewer, section: "services",
                                live: .init(eventPrefixes: ["target_", "rollout_", "wave_"]))
        return layout.render("<section id=\"service-list\" data-live>\(table)</section>")
    }

    static func service(_ status: Slipway_V1_ServiceStatus, viewer: Viewer, notice: String) -> String {
        let name = status.service
        let targets = status.targets.map { target in
            """
            <tr><td>\(target.region.isEmpty ? "global" : HTML.escape(target.region) + " (pinned)")</td><td>\(HTML.digestLink(target.artifactDigest))</td>
            <td>v\(target.version)</td><td>\(target.rolloutID == 0 ? "—" : "\(target.rolloutID)")</td>
            <td>\(HTML.escape(target.setBy))</td><td>\(HTML.time(target.setAtUnixMicros))</td></tr>
            """
        }.joined()
        let targetTable = status.targets.isEmpty ? "<p class=\"empty\">No target: no build is deployed.</p>" : """
            <table id="targets"><thead><tr><th>Scope</th><th>Build</th><th>Version</th><th>Rollout</th><th>Set by</th><th>At</th></tr></thead><tbody>\(targets)</tbody></table>
            """
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let machines = status.regions.map { region in regionRows(region, service: name, now: now) }.joined()
        let machineTable = machines.isEmpty ? "<p class=\"empty\">No region has reported machines of this service.</p>" : """
            <table id="machines"><thead><tr><th>Region</th><th>Machines</th><th>Builds</th><th>Failing</th><th>Missing</th><th>Report</th></tr></thead><tbody>\(machines)</tbody></table>
            """
        let history = status.history.map { record in
            """
            <tr><td>\(HTML.time(record.setAtUnixMicros))</td><td>\(HTML.escape(record.action))</td><td>\(record.region.isEmpty ? "global" : HTML.escape(record.region))</td>
            <td>\(HTML.digestLink(record.fromDigest))</td><td>\(HTML.digestLink(record.toDigest))</td><td>v\(record.version)</td><td>\(HTML.escape(record.setBy))</td></tr>
            """
        }.joined()
        let historyTable = history.isEmpty ? "<p class=\"empty\">Never deployed.</p>" : """
            <table id="history"><thead><tr><th>At</th><th>Action</th><th>Scope</th><th>From</th><th>To</th><th>Version</th><th>By</th></tr></thead><tbody>\(history)</tbody></table>
            """
        let rollout = status.rollouts.first.map { rolloutSection($0, viewer: viewer) } ?? "<p class=\"empty\">No rollout yet.</p>"
        let layout = PageLayout(title: "Service \(name)", viewer: viewer, section: "services",
                                live: .init(eventPrefixes: ["target_", "rollout_", "wave_"], subjectKey: "service", subject: name), notice: notice)
        return layout.render("""
            <section id="service-summary" data-live>
            <h2>Targets</h2>\(targetTable)
            <h2>Rollout</h2>\(rollout)
            <h2>Machines</h2>\(machineTable)
            <h2>History</h2>\(historyTable)
            </section>\(viewer.isOperator ? actions(name, status) : "")
            """)
    }

    private static func regionRows(_ region: Slipway_V1_RegionReport, service: String, now: Int64) -> String {
        let counts = region.counts.filter { $0.service == service }
        let failing = region.failures.filter { $0.service == service }
        let missing = region.missing.filter { $0.service == service }
        guard !counts.isEmpty || !missing.isEmpty else { return "" }
        let total = counts.reduce(0) { $0 + $1.machines }
        let builds = counts.map { "\($0.machines) \(HTML.badge($0.state.word)) \(HTML.digestLink($0.artifactDigest))" }.joined(separator: "<br>")
        let failures = failing.prefix(10).map { "\(HTML.escape($0.machineID)) \($0.state.word): \(HTML.escape($0.reason))" }.joined(separator: "<br>")
        let missed = missing.prefix(10).map { HTML.escape($0.machineID) }.joined(separator: ", ")
        let age = (now - region.receivedAtUnixMicros) / 1_000_000
        return """
            <tr data-region="\(HTML.escape(region.region))"><td>\(HTML.escape(region.region))</td><td class="machine-count">\(total)</td><td>\(builds)</td>
            <td class="failure">\(failures)\(failing.count > 10 ? " and \(failing.count - 10) more" : "")</td>
            <td>\(missing.isEmpty ? "" : "\(missing.count): \(missed)")</td><td>\(age)s ago\(age > 45 ? " <span class=\"failure\">stale</span>" : "")</td></tr>
            """
    }

    private static func rolloutSection(_ rollout: Slipway_V1_RolloutStatus, viewer: Viewer) -> String {
        let waves = rollout.waves.enumerated().map { index, wave in
            let shares = wave.shares.map { share in
                "\(HTML.escape(share.region)):" + (share.machines > 0 ? "\(share.machines)" : "\(Double(share.perMille) / 10)%")
            }.joined(separator: ", ")
            let current = index == Int(rollout.wave) && rollout.state != .succeeded
            return """
            <tr class="\(current ? "current" : "")" data-wave="\(index + 1)"><td>\(index + 1)</td><td>\(shares)</td><td>\(wave.bakeSeconds)s</td>
            <td>\(Double(wave.minHealthyPerMille) / 10)%</td><td>\(wave.maxFailed)</td><td>\(wave.result.isEmpty ? (current ? HTML.badge("running") : "") : HTML.badge(wave.result))</td>
            <td>\(HTML.escape(wave.detail))</td><td>\(HTML.time(wave.startedAtUnixMicros))</td><td>\(HTML.time(wave.endedAtUnixMicros))</td></tr>
            """
        }.joined()
        let progress = rollout.progress.map { region in
            """
            <tr data-region="\(HTML.escape(region.region))"><td>\(HTML.escape(region.region))</td><td>\(region.machines)</td><td>\(region.selected)</td>
            <td>\(region.healthy)</td><td>\(region.failed)</td><td>\(region.missing)</td><td>\(HTML.time(region.receivedAtUnixMicros))</td></tr>
            """
        }.joined()
        let failures = rollout.failures.prefix(20).map { "<li>\(HTML.escape($0.region))/\(HTML.escape($0.machineID)) \($0.state.word): \(HTML.escape($0.reason))</li>" }.joined()
        return """
            <table class="details" id="rollout" data-state="\(rollout.state.word)">
            <tr><th>Rollout</th><td>\(rollout.id) \(HTML.badge(rollout.state.word)) wave \(rollout.wave + 1) of \(rollout.waves.count), plan \(HTML.escape(rollout.plan))</td></tr>
            <tr><th>From → to</th><td>\(HTML.digestLink(rollout.fromDigest)) → \(HTML.digestLink(rollout.toDigest))</td></tr>
            <tr><th>Started by</th><td>\(HTML.escape(rollout.setBy))\(rollout.actor.isEmpty ? "" : " (key \(HTML.escape(rollout.actor)))")</td></tr>
            \(rollout.reason.isEmpty ? "" : "<tr><th>Why</th><td class=\"failure\" id=\"rollout-reason\">\(HTML.escape(rollout.reason))</td></tr>")
            </table>
            <table id="waves"><thead><tr><th>Wave</th><th>Shares</th><th>Bake</th><th>Min healthy</th><th>Max failed</th><th>Result</th><th>Detail</th><th>Started</th><th>Ended</th></tr></thead><tbody>\(waves)</tbody></table>
            \(progress.isEmpty ? "" : "<table id=\"wave-progress\"><thead><tr><th>Region</th><th>Machines</th><th>In this wave</th><th>Healthy</th><th>Failed</th><th>Silent</th><th>Reported</th></tr></thead><tbody>\(progress)</tbody></table>")
            \(failures.isEmpty ? "" : "<h3>Failing machines</h3><ul id=\"rollout-failures\">\(failures)</ul>")
            """
    }

    private static func actions(_ name: String, _ status: Slipway_V1_ServiceStatus) -> String {
        let base = "/services/\(HTML.urlComponent(name))/confirm?action="
        var controls = ""
        if let rollout = status.rollouts.first, [.progressing, .paused, .halted].contains(rollout.state) {
            let buttons: [(String, String)] = [("pause", "Pause"), ("resume", "Resume"), ("promote", "Promote to the next wave"), ("abort", "Abort")]
            controls = buttons.map { "<a class=\"button\" id=\"rollout-\($0.0)\" href=\"\(base)\($0.0)\">\($0.1)…</a>" }.joined(separator: " ")
        }
        return """
            <section id="service-actions"><h2>Actions</h2>
            <p id="rollout-controls" data-live>\(controls) <a class="button danger" id="rollback" href="\(base)rollback">Roll back…</a></p>
            <form method="get" action="/deploy" class="action"><input type="hidden" name="service" value="\(HTML.escape(name))">
            <label>Build <input name="artifact" placeholder="sha256 digest or a prefix of it" required></label>
            <label>Plan <input name="plan" list="plans" placeholder="the coordinator's default"></label>
            <datalist id="plans"><option value="all"><option value="canary"></datalist>
            <label>Only region <input name="region" placeholder="every region (global)"></label><button>Deploy…</button></form></section>
            """
    }
}
