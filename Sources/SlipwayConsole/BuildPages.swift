import SlipwayJSON
import SlipwayProto

/// The Builds pages: the job list with filters, and one job with its live log.
enum BuildPages {
    static func list(_ jobs: [Slipway_V1_JobInfo], status: String, artifact: String, viewer: Viewer) -> String {
        let options = ["", "queued", "running", "succeeded", "failed", "cancelled"].map { word in
            "<option value=\"\(word)\"\(word == status ? " selected" : "")>\(word.isEmpty ? "any status" : word)</option>"
        }.joined()
        let rows = jobs.map { job in
            """
            <tr data-job="\(HTML.escape(job.jobID))"><td><a href="/builds/\(HTML.escape(job.jobID))">\(HTML.escape(job.jobID))</a></td>
            <td>\(HTML.badge(job.status.word))</td><td>\(HTML.escape(job.artifactName))</td>
            <td class="repo">\(HTML.escape(job.repoURL))</td><td><code>\(HTML.escape(String(job.commit.prefix(12))))</code></td>
            <td>\(job.attempt)/\(job.maxAttempts)</td><td>\(HTML.escape(job.workerID))</td><td>\(HTML.escape(job.submittedBy))</td>
            <td>\(HTML.time(job.createdAtUnixMicros))</td><td>\(HTML.time(job.finishedAtUnixMicros))</td></tr>
            """
        }.joined(separator: "\n")
        let table = jobs.isEmpty ? "<p class=\"empty\">No jobs match.</p>" : """
            <table id="jobs"><thead><tr><th>Job</th><th>Status</th><th>Artifact</th><th>Repository</th><th>Commit</th>
            <th>Attempt</th><th>Worker</th><th>Submitted by</th><th>Created</th><th>Finished</th></tr></thead><tbody>\(rows)</tbody></table>
            """
        let layout = PageLayout(title: "Builds", viewer: viewer, section: "builds", live: .init(eventPrefixes: ["job_"]))
        return layout.render("""
            <form method="get" action="/builds" class="filters"><select name="status">\(options)</select>
            <input name="artifact" placeholder="artifact name" value="\(HTML.escape(artifact))"><button>Filter</button></form>
            <section id="job-list" data-live>\(table)</section>
            """)
    }

    static func job(_ job: Slipway_V1_JobInfo, viewer: Viewer, notice: String = "") -> String {
        let terminal = JobStatusWord.isTerminal(job.status)
        var details: [(String, String)] = [
            ("Status", HTML.badge(job.status.word)),
            ("Repository", HTML.escape(job.repoURL)),
            ("Commit", "<code>\(HTML.escape(job.commit))</code>"
                + (job.requestedCommit.isEmpty || job.requestedCommit == job.commit ? "" : " (asked for \(HTML.escape(job.requestedCommit)))")),
            ("Artifact", HTML.escape(job.artifactName) + (job.artifactDigest.isEmpty ? "" : " " + HTML.digestLink(job.artifactDigest))),
            ("Attempt", "\(job.attempt) of \(job.maxAttempts)"),
            ("Worker", HTML.escape(job.workerID.isEmpty ? "—" : job.workerID)),
            ("Region", HTML.escape(job.region.isEmpty ? "—" : job.region)),
            ("Submitted by", HTML.escape(job.submittedBy.isEmpty ? "—" : job.submittedBy)),
            ("Created", HTML.time(job.createdAtUnixMicros)),
            ("Started", HTML.time(job.startedAtUnixMicros)),
            ("Finished", HTML.time(job.finishedAtUnixMicros)),
        ]
        if !job.labels.isEmpty { details.append(("Needs labels", HTML.escape(job.labels.joined(separator: ", ")))) }
        if !job.environment.isEmpty { details.append(("Environment", HTML.escape(job.environment.joined(separator: ", ")))) }
        if job.cacheHit { details.append(("Cache", "hit: an earlier build of the same commit and recipe")) }
        if !job.error.isEmpty { details.append(("Failure", "<span class=\"failure\">\(HTML.escape(job.error))</span>")) }
        let table = details.map { "<tr><th>\($0.0)</th><td>\($0.1)</td></tr>" }.joined()
        let cancel = viewer.isOperator && !terminal
            ? "<p><a class=\"button danger\" id=\"cancel\" href=\"/builds/\(HTML.escape(job.jobID))/cancel\">Cancel this build…</a></p>" : ""
        let layout = PageLayout(title: "Build \(job.jobID)", viewer: viewer, section: "builds",
                                live: .init(eventPrefixes: ["job_"], subjectKey: "job_id", subject: job.jobID), notice: notice)
        return layout.render("""
            <section id="job-summary" data-live data-status="\(job.status.word)"><table class="details">\(table)</table>\(cancel)</section>
            <h2>Log</h2><pre id="log" data-job="\(HTML.escape(job.jobID))" aria-live="polite"></pre>
            """)
    }
}

/// Job status words the pages branch on.
enum JobStatusWord {
    static func isTerminal(_ status: Slipway_V1_JobStatus) -> Bool {
        status == .succeeded || status == .failed || status == .cancelled
    }
}
