import Hummingbird

/// The console's stylesheet and script, served from the binary: no build step, no files to deploy.
enum StaticAssets {
    static func response(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static let css = """
        body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
        nav { display: flex; gap: 1.2em; align-items: center; padding: .6em 1.2em; background: #1d2430; color: #fff; }
        nav a { color: #cfd6e4; text-decoration: none; } nav a.current, nav a:hover { color: #fff; font-weight: 600; }
        nav .brand { font-weight: 700; margin-right: 1em; } nav .who { margin-left: auto; display: flex; gap: .6em; align-items: center; }
        main { padding: 1em 1.6em 3em; } h1 { font-size: 1.5em; margin: .2em 0 .6em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
        table { border-collapse: collapse; background: #fff; margin: .4em 0; } th, td { padding: .35em .7em; border-bottom: 1px solid #e3e6eb; text-align: left; vertical-align: top; }
        table.details th { width: 11em; color: #5a6475; font-weight: 500; } tr.current { background: #fff8e1; }
        .badge { display: inline-block; padding: 0 .55em; border-radius: 1em; font-size: .9em; background: #e3e6eb; }
        .badge.good { background: #d3f2dc; color: #12632b; } .badge.bad { background: #fbd9d7; color: #8d1c13; } .badge.busy { background: #fdf0c7; color: #7a5700; }
        .failure, .problem { color: #8d1c13; } .notice { background: #d3f2dc; padding: .5em .8em; } .problem { background: #fbd9d7; padding: .5em .8em; }
        pre#log { background: #10141b; color: #d7dde8; padding: .8em; min-height: 6em; max-height: 60vh; overflow: auto; white-space: pre-wrap; }
        .button, button { display: inline-block; padding: .35em .9em; border: 1px solid #8a94a6; border-radius: 4px; background: #fff; color: #1d2430; text-decoration: none; cursor: pointer; font: inherit; }
        .danger { border-color: #b3261e; color: #b3261e; } button.link { border: none; background: none; color: #cfd6e4; padding: 0; }
        form.inline { display: inline; } form.action label, form.filters > * { margin-right: .6em; } form.signin { display: grid; gap: .7em; max-width: 20em; }
        .dot { width: .6em; height: .6em; border-radius: 50%; background: #8a94a6; display: inline-block; } .dot.on { background: #3ccf6e; }
        .empty { color: #5a6475; } code, .digest { font-family: ui-monospace, monospace; font-size: .92em; } td.repo { max-width: 22em; overflow-wrap: anywhere; }
        """

    /// Live updates: listen to `/api/v1/events`; when an event concerns this page, re-read the page and swap
    /// each `[data-live]` section; follow a job's log from `/api/v1/jobs/ID/log`.
    static let script = """
        'use strict';
        (function () {
          const main = document.querySelector('main');
          if (!main) return;
          const prefixes = (main.dataset.refreshOn || '').split(' ').filter(Boolean);
          const subjectKey = main.dataset.subjectKey || '', subject = main.dataset.subject || '';
          let refreshing = false, again = false;
          async function refresh() {
            if (refreshing) { again = true; return; }
            refreshing = true;
            try {
              const response = await fetch(location.href, { credentials: 'same-origin' });
              if (response.ok) {
                const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
                document.querySelectorAll('[data-live]').forEach(function (old) {
                  const next = old.id && fresh.getElementById(old.id);
                  // A section someone is typing in stays as it is.
                  const busy = old.contains(document.activeElement) && document.activeElement !== document.body ||
                    Array.from(old.querySelectorAll('input')).some(function (input) {
                      return input.type === 'checkbox' ? input.checked !== input.defaultChecked : input.value !== input.defaultValue;
                    });
                  if (next && !busy) old.replaceWith(next);
                });
                document.dispatchEvent(new Event('slipway:refreshed'));
              }
            } catch (e) { /* the next event or timer tries again */ }
            refreshing = false;
            if (again) { again = false; setTimeout(refresh, 250); }
          }
          function concerns(event) {
            if (!prefixes.some(function (p) { return event.type.indexOf(p) === 0; })) return false;
            return !subjectKey || !subject || event[subjectKey] === subject;
          }
          const dot = document.getElementById('live-dot');
          if (prefixes.length && window.EventSource) {
            const source = new EventSource('/api/v1/events');
            source.onopen = function () { if (dot) dot.classList.add('on'); };
            source.onerror = function () { if (dot) dot.classList.remove('on'); };
            source.onmessage = function (message) {
              let event; try { event = JSON.parse(message.data); } catch (e) { return; }
              if (concerns(event)) refresh();
              if (log && event.job_id === log.dataset.job) pollLog();
            };
            // A missed event (a reconnect, a slow tab) costs at most this long.
            setInterval(refresh, 15000);
          }
          const log = document.getElementById('log');
          let offset = 0, attempt = 0, polling = false, done = false;
          async function pollLog() {
            if (!log || polling || done) return;
            polling = true;
            try {
              for (;;) {
                const response = await fetch('/api/v1/jobs/' + log.dataset.job + '/log?offset=' + offset, { credentials: 'same-origin' });
                if (!response.ok) break;
                const chunk = await response.json();
                if (attempt && chunk.attempt !== attempt) { log.textContent += '\\n--- attempt ' + chunk.attempt + ' ---\\n'; offset = 0; attempt = chunk.attempt; continue; }
                attempt = chunk.attempt;
                if (chunk.text) { log.textContent += chunk.text; offset = chunk.next_offset; log.scrollTop = log.scrollHeight; continue; }
                if (chunk.complete) { done = true; log.dataset.complete = 'true'; }
                break;
              }
            } catch (e) { /* retried by the timer */ }
            polling = false;
          }
          if (log) { pollLog(); setInterval(pollLog, 1000); }
        })();
        """
}
