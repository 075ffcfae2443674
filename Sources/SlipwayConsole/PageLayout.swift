/// The frame every page shares: navigation, who is signed in, a message, and
/// what the live script listens for.
struct PageLayout {
    /// What makes the page re-read itself: event types by prefix (`job_`,
    /// `rollout_`), and optionally one subject (`job_id` = `abc`).
    struct Live {
        var eventPrefixes: [String]
        var subjectKey = ""
        var subject = ""

        static let none = Live(eventPrefixes: [])
    }

    var title: String
    var viewer: Viewer?
    var section = ""
    var live = Live.none
    var notice = ""
    var problem = ""

    func render(_ body: String) -> String {
        let nav = viewer.map { viewer in
            let links = ([("builds", "/builds", "Builds"), ("artifacts", "/artifacts", "Artifacts"), ("services", "/services", "Services")]
                + (viewer.isOperator ? [("audit", "/audit", "Audit")] : []))
                .map { key, href, label in "<a href=\"\(href)\"\(key == section ? " class=\"current\"" : "")>\(label)</a>" }
                .joined()
            return """
            <nav><span class="brand">Slipway</span>\(links)
            <span class="who"><span id="live-dot" class="dot" title="live updates"></span>
            <span id="who">\(HTML.escape(viewer.name)) (\(viewer.role.rawValue))</span>
            <form method="post" action="/logout" class="inline">\(HTML.csrfField(viewer))<button class="link" id="sign-out">Sign out</button></form></span></nav>
            """
        } ?? "<nav><span class=\"brand\">Slipway</span></nav>"
        let message = (notice.isEmpty ? "" : "<p class=\"notice\" id=\"notice\">\(HTML.escape(notice))</p>")
            + (problem.isEmpty ? "" : "<p class=\"problem\" id=\"problem\">\(HTML.escape(problem))</p>")
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(HTML.escape(title)) · Slipway</title><link rel="stylesheet" href="/static/console.css"></head>
        <body>\(nav)
        <main data-refresh-on="\(HTML.escape(live.eventPrefixes.joined(separator: " ")))" data-subject-key="\(HTML.escape(live.subjectKey))" data-subject="\(HTML.escape(live.subject))">
        <h1>\(HTML.escape(title))</h1>\(message)
        \(body)
        </main><script src="/static/console.js" defer></script></body></html>
        """
    }
}
