import SlipwayJSON
import SlipwayProto

/// The audit log for operators: every privileged action and every refusal, newest first.
enum AuditPage {
    static func render(_ entries: [Slipway_V1_AuditEntry], since: String, viewer: Viewer) -> String {
        let rows = entries.map { entry in
            """
            <tr><td>\(HTML.time(entry.atUnixMicros))</td><td>\(HTML.escape(entry.identity))</td><td>\(HTML.escape(entry.action))</td>
            <td>\(HTML.escape(entry.object))</td><td>\(HTML.badge(entry.outcome))</td><td>\(HTML.escape(entry.detail))</td></tr>
            """
        }.joined(separator: "\n")
        let table = entries.isEmpty ? "<p class=\"empty\">Nothing recorded in this period.</p>" : """
            <table id="audit"><thead><tr><th>At</th><th>Key</th><th>Action</th><th>Object</th><th>Outcome</th><th>Detail</th></tr></thead>
            <tbody>\(rows)</tbody></table>
            """
        let choices = ["1h", "24h", "7d", "30d"].map { "<option value=\"\($0)\"\($0 == since ? " selected" : "")>last \($0)</option>" }.joined()
        return PageLayout(title: "Audit log", viewer: viewer, section: "audit").render("""
            <form method="get" action="/audit" class="filters"><select name="since">\(choices)</select><button>Show</button></form>
            <p class="empty">Actions through the console show the console's key; the person is in the object's <i>set by</i>.</p>
            \(table)
            """)
    }
}
