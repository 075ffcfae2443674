import Foundation
import Hummingbird

/// `/login` and `/logout`.
extension ConsoleApp {
    struct SignInForm: Decodable {
        var name: String?
        var password: String?
        var next: String?
    }

    func addSignIn(to router: Router<ConsoleContext>) {
        router.get("/login") { request, context in
            let next = request.uri.queryParameters["next"].map(String.init) ?? "/"
            return Response.html(SignInPage.render(next: Self.safeNext(next), problem: ""))
        }
        router.post("/login") { request, context in
            let form = try await URLEncodedFormDecoder().decode(SignInForm.self, from: request, context: context)
            let next = Self.safeNext(form.next ?? "/")
            guard let name = form.name, let password = form.password, !name.isEmpty, !password.isEmpty else {
                return Response.html(SignInPage.render(next: next, problem: "enter a name and a password"), status: .badRequest)
            }
            guard password.utf8.count <= 1_024 else {
                return Response.html(SignInPage.render(next: next, problem: "unknown user or wrong password"), status: .unauthorized)
            }
            let cookie: String
            do {
                cookie = try await access.signIn(name: name, password: password)
                ConsoleMetrics.signIn("ok")
            } catch let error as ConsoleError {
                ConsoleMetrics.signIn(error.code)
                return Response.html(SignInPage.render(next: next, problem: error.message), status: error.status)
            }
            var response = Response.redirect(to: next, type: .found)
            response.setCookie(Cookie(name: ConsoleAccess.cookieName, value: cookie, maxAge: Int(access.sessionLifetime.components.seconds),
                                      path: "/", secure: secureCookies, httpOnly: true, sameSite: .lax))
            return response
        }
        router.post("/logout") { request, context in
            // Signing out needs the CSRF token too, or any site could sign a user out.
            if let session = context.session {
                let form = try await URLEncodedFormDecoder().decode([String: String].self, from: request, context: context)
                guard access.signer.checkCSRF(form["csrf"], for: session) else { throw ConsoleError.csrf }
            }
            var response = Response.redirect(to: "/login", type: .found)
            response.setCookie(Cookie(name: ConsoleAccess.cookieName, value: "", maxAge: 0, path: "/", secure: secureCookies, httpOnly: true, sameSite: .lax))
            return response
        }
    }

    /// A path on this console to return to after signing in; anything else (another site, `//host`) goes home.
    static func safeNext(_ next: String) -> String {
        // Browsers drop tabs and line breaks from a Location and read `\` as `/`: `/\tevil` would be `//evil`.
        guard next.hasPrefix("/"), next.utf8.count <= 512, !next.hasPrefix("/login"),
              next.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && $0 != "\\" }),
              !next.hasPrefix("//") else { return "/" }
        return next
    }
}

/// The sign-in form.
enum SignInPage {
    static func render(next: String, problem: String) -> String {
        PageLayout(title: "Sign in", viewer: nil, problem: problem).render("""
            <form method="post" action="/login" class="signin" id="signin">
            <input type="hidden" name="next" value="\(HTML.escape(next))">
            <label>Name <input name="name" id="name" autocomplete="username" required autofocus></label>
            <label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
            <button id="sign-in">Sign in</button></form>
            """)
    }
}
