import SlipwayJSON

/// Text made safe for HTML, built by the pages.
enum HTML {
    /// `text` with `& < > " '` escaped: safe in element content and quoted attributes.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters from build output or hostile names are shown, not interpreted.
                if character.value < 0x20, character != "\n", character != "\t" { out += "\u{FFFD}" } else { out.unicodeScalars.append(character) }
            }
        }
        return out
    }

    /// `text` for a URL path segment or query value.
    static func urlComponent(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
            out += unreserved ? String(UnicodeScalar(byte)) : "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
        }
        return out
    }

    /// `2026-12-02 05:40:12Z`, or `—` for "not yet".
    static func time(_ micros: Int64) -> String {
        guard case .string(let text) = JSONValue.time(unixMicros: micros) else { return "—" }
        return text.prefix(10) + " " + text.dropFirst(11).prefix(8) + "Z"
    }

    /// A status word as a coloured badge (`succeeded` green, `failed` red, …).
    static func badge(_ word: String) -> String {
        let tone: String
        switch word {
        case "succeeded", "complete", "running", "healthy", "passed", "installed": tone = "good"
        case "failed", "rolled_back", "halted", "aborted", "download_failed", "cancelled": tone = "bad"
        case "queued", "pending", "copying", "progressing", "downloading", "paused": tone = "busy"
        default: tone = "plain"
        }
        return "<span class=\"badge \(tone)\" data-status=\"\(escape(word))\">\(escape(word))</span>"
    }

    /// `sha256:0123456789ab` linking to the artifact's page.
    static func digestLink(_ digest: String, length: Int = 12) -> String {
        guard !digest.isEmpty else { return "—" }
        return "<a class=\"digest\" href=\"/artifacts/\(escape(digest))\" title=\"sha256:\(escape(digest))\">sha256:\(escape(String(digest.prefix(length))))</a>"
    }

    /// A hidden CSRF field for a form, when the viewer has a session.
    static func csrfField(_ viewer: Viewer) -> String {
        guard let token = viewer.csrfToken else { return "" }
        return "<input type=\"hidden\" name=\"csrf\" value=\"\(escape(token))\">"
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
