//! The demo's HTML: one layout with inline CSS, the session panel, and the cart burst's
//! script. No external assets, so the page works offline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::Html;
use session_layer::{Session, SessionInfo};

use super::app::Settings;

/// How many parallel requests the "two tabs at once" button sends.
pub const BURST: usize = 20;

/// The home page: counter, login, the user's sessions, flash form, cart burst, and the
/// session panel. `listed` is the signed-in user's sessions, `None` when the storage cannot
/// list them.
pub fn home(
    session: &Session,
    settings: &Settings,
    visits: u64,
    listed: Option<&[SessionInfo]>,
) -> Html<String> {
    // Flash values arrive on the request after the one that set them, then are gone.
    let flash = session
        .get::<String>("notice")
        .map(|notice| {
            format!(
                r#"<div class="flash" id="flash" role="status">{}</div>"#,
                escape(&notice)
            )
        })
        .unwrap_or_default();
    let owner = session.owner();
    let account = match &owner {
        Some(user) => format!(
            r#"<h2>Logged in</h2>
<p>Logged in as <b id="user">{}</b>.</p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
<p class="muted">Logging out destroys the session: the server deletes it and the browser drops the cookie.</p>"#,
            escape(user)
        ),
        None => r#"<h2>Log in</h2>
<form method="post" action="/login" class="row">
<input name="username" placeholder="any name" required aria-label="Username"> <button id="login">Log in</button></form>
<p class="muted">Logging in names the user as the session's owner (<code>set_owner</code>), gives the session a new id and deletes the old one (<code>regenerate_id(true)</code>): watch the id in the panel.</p>"#
            .to_owned(),
    };
    let signed_in = match owner {
        Some(_) => signed_in(session, settings, listed),
        None => String::new(),
    };
    let cart = session.get::<Vec<u32>>("cart").map_or(0, |cart| cart.len());
    let cookie_note = if settings.storage == "cookie" {
        r#" <b>Here the cookie is the storage:</b> each response carries its own copy of the cart, the last one wins, so expect 1 of 20."#
    } else {
        ""
    };
    let panel = panel(session, settings);
    layout(format!(
        r#"<main class="home">{flash}
<div>
<section class="card"><h2>Visits</h2>
<p>You have been here <span class="big" id="visits">{visits}</span> {times}.</p>
<p class="muted">Every visit changes the session, so every response saves it and refreshes its expiry.</p></section>
<section class="card">{account}</section>{signed_in}
<section class="card"><h2>Two tabs at once</h2>
<p>{BURST} requests at the same time, each adding one item to the cart with <code>Session::update</code>.
A server-side storage applies each update again to the cart as stored when it saves, so none is lost.{cookie_note}</p>
<p class="row"><button id="burst" data-n="{BURST}">Add {BURST} items at once</button> <output id="burst-result"></output></p>
<form method="post" action="/cart/clear" class="row"><span>Cart: <b id="cart-count">{cart}</b> items</span>
<button class="secondary">Empty the cart</button></form></section>
<section class="card"><h2>Flash message</h2>
<form method="post" action="/message" class="row">
<input name="message" placeholder="Hello!" required aria-label="Message"> <button id="send">Send</button></form>
<p class="muted">Shown once, on the page the form leads to: reload it and the message is gone.</p></section>
</div>
<aside class="card panel" id="panel">{panel}</aside>
</main>
<script>{SCRIPT}</script>"#,
        times = if visits == 1 { "time" } else { "times" },
    ))
}

/// The "Where you are signed in" card: the user's sessions, most recently active first,
/// this one marked, each other one with its own "Sign out".
fn signed_in(session: &Session, settings: &Settings, listed: Option<&[SessionInfo]>) -> String {
    let Some(listed) = listed else {
        return format!(
            r#"
<section class="card" id="signed-in"><h2>Where you are signed in</h2>
<p class="muted">The {} storage cannot list a user's sessions: it does not implement <code>SessionIndex</code>.</p></section>"#,
            escape(&settings.storage)
        );
    };
    let this = session.handle();
    let rows: String = listed
        .iter()
        .map(|info| {
            let device = info.data.values.get("device").and_then(|v| v.as_str());
            let (class, action) = if info.handle == this {
                (r#" class="this""#, "<b>this device</b>".to_owned())
            } else {
                let form = format!(
                    r#"<form method="post" action="/sessions/end"><input type="hidden" name="handle" value="{}"><button class="secondary sign-out">Sign out</button></form>"#,
                    escape(info.handle.as_str())
                );
                ("", form)
            };
            format!(
                r#"<tr{class}><td class="device">{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>"#,
                escape(device.unwrap_or("Unknown browser")),
                // The header says UTC once, so that a row fits on one line.
                utc(info.created).trim_end_matches(" UTC"),
                utc(info.saved).trim_end_matches(" UTC")
            )
        })
        .collect();
    let others = listed.iter().any(|info| info.handle != this);
    let everywhere = if others {
        r#"<form method="post" action="/sessions/end-others"><button id="end-others" class="secondary">Sign out everywhere else</button></form>"#
    } else {
        ""
    };
    format!(
        r#"
<section class="card" id="signed-in"><h2>Where you are signed in</h2>
<table class="sessions" id="sessions"><tr><th>device</th><th>created (UTC)</th><th>last active (UTC)</th><th></th></tr>
{rows}</table>{everywhere}
<p class="muted">Every session of this user, from <code>sessions_of</code>. Log in as the same name in another browser to see a second row; signing it out here (<code>end_session</code>) ends it there on its next request.</p></section>"#
    )
}

/// The panel's contents: the session as the server holds it after this request.
pub fn panel(session: &Session, settings: &Settings) -> String {
    // Only the first characters: enough to see it change, too few to be the session.
    let id: String = session.id().chars().take(8).collect();
    let state = if session.is_loaded() {
        "loaded from storage"
    } else {
        "new: started by this request"
    };
    let expires = match SystemTime::now().checked_add(settings.ttl) {
        Some(at) => format!(
            r#"{}<br><span class="muted">{} after this request's save</span>"#,
            utc(at),
            human(settings.ttl)
        ),
        None => "never (the TTL is beyond any date)".to_owned(),
    };
    let values = session.data().values;
    let values = if values.is_empty() {
        r#"<span class="muted">none</span>"#.to_owned()
    } else {
        let rows: String = values
            .iter()
            .map(|(key, value)| {
                format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(key),
                    escape(&compact(value))
                )
            })
            .collect();
        format!(r#"<table id="session-values">{rows}</table>"#)
    };
    let flash = match session.get_value("notice") {
        Some(notice) => format!(
            r#"notice: {}<br><span class="muted">arrived with this request; the save removes it</span>"#,
            escape(&notice.to_string())
        ),
        None => r#"<span class="muted">none</span>"#.to_owned(),
    };
    format!(
        r#"<h2>The session, as the server holds it</h2>
<dl>
<dt>storage</dt><dd>{storage}</dd>
<dt>id</dt><dd><code id="session-id">{id}…</code></dd>
<dt>state</dt><dd id="session-state">{state}</dd>
<dt>owner</dt><dd id="session-owner">{owner}</dd>
<dt>created</dt><dd>{created}</dd>
<dt>expires</dt><dd>{expires}</dd>
<dt>values</dt><dd>{values}</dd>
<dt>flash</dt><dd id="session-flash">{flash}</dd>
</dl>"#,
        storage = escape(&settings.storage),
        id = escape(&id),
        owner = session.owner().map_or_else(
            || r#"<span class="muted">none</span>"#.to_owned(),
            |owner| escape(&owner)
        ),
        created = utc(session.created_at()),
    )
}

pub fn login_form() -> Html<String> {
    single(
        r#"<h2>Log in</h2>
<form method="post" action="/login" class="row">
<input name="username" required aria-label="Username" autofocus> <button>Log in</button></form>"#,
    )
}

pub fn message_form() -> Html<String> {
    single(
        r#"<h2>Leave a message</h2>
<form method="post" action="/message" class="row">
<input name="message" required aria-label="Message" autofocus> <button>Send</button></form>"#,
    )
}

pub fn logged_out() -> Html<String> {
    single(
        r#"<h2 id="logged-out">Logged out</h2>
<p>The server deleted the session and told the browser to drop its cookie. This page does not
touch the session, so the browser now holds no session cookie.</p>
<p><a href="/">Home</a> starts a fresh session, with a new id.</p>"#,
    )
}

/// A page with one card.
fn single(card: &str) -> Html<String> {
    layout(format!(
        r#"<main class="single"><section class="card">{card}</section></main>"#
    ))
}

fn layout(main: String) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>session-layer demo</title><style>{STYLE}</style></head>
<body><header><h1>session-layer demo</h1><nav><a href="/">Home</a> <a href="/metrics">Metrics</a></nav></header>
{main}
</body></html>
"#
    ))
}

const STYLE: &str = r#"
:root { --bg: #f5f6f8; --card: #fff; --ink: #1f2328; --muted: #5f6b7a; --line: #d9dee4;
  --accent: #2f5bd3; --ok: #1a7f37; --bad: #c62828; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: var(--bg); color: var(--ink); }
header { background: #1f2937; color: #fff; padding: .75rem 1.5rem; display: flex;
  align-items: baseline; gap: 2rem; }
header h1 { font-size: 1.1rem; margin: 0; }
header nav { display: flex; gap: 1.25rem; }
header a { color: #e5e7eb; text-decoration: none; }
header a:hover { color: #fff; text-decoration: underline; }
main { max-width: 70rem; margin: 1.5rem auto; padding: 0 1.5rem; }
main.home { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 27rem); gap: 0 1.25rem;
  align-items: start; }
main.single { max-width: 34rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: .9rem 1.25rem; margin-bottom: 1rem; }
.card h2 { font-size: 1.05rem; margin: 0 0 .5rem; }
.card p { margin: .5rem 0; }
.flash { grid-column: 1 / -1; background: #e6f6ea; border: 1px solid #5fbf77;
  border-left: 6px solid var(--ok); color: #0f5323; border-radius: 10px;
  padding: .75rem 1rem; font-weight: 600; margin-bottom: 1rem; }
.flash::before { content: "\2709\FE0E  "; }
main a { color: var(--accent); }
.big { font-size: 1.6rem; font-weight: 700; color: var(--accent); }
.muted { color: var(--muted); font-size: .88rem; }
.row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
form { margin: .5rem 0; }
input { font: inherit; padding: .35rem .6rem; border: 1px solid var(--line); border-radius: 6px;
  min-width: 12rem; }
button { font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 6px;
  padding: .4rem .9rem; cursor: pointer; }
button:hover { filter: brightness(1.1); }
button:disabled { opacity: .6; cursor: wait; }
button.secondary { background: #eef1f4; color: var(--ink); border: 1px solid var(--line); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
output.ok { color: var(--ok); font-weight: 700; }
output.bad { color: var(--bad); font-weight: 700; }
.sessions { border-collapse: collapse; width: 100%; font-size: .88rem; }
.sessions th, .sessions td { text-align: left; padding: .3rem .5rem .3rem 0;
  border-bottom: 1px solid #eef0f2; }
.sessions th { color: var(--muted); font-weight: 600; }
.sessions td + td { white-space: nowrap; }
.sessions tr.this td { background: #eef2ff; }
.sessions form { margin: 0; }
.sessions button { padding: .2rem .6rem; }
.panel { position: sticky; top: 1rem; border-top: 4px solid var(--accent); }
.panel dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .4rem 1rem;
  margin: 0; }
.panel dt { color: var(--muted); }
.panel dd { margin: 0; overflow-wrap: anywhere; }
.panel #session-id { background: #eef2ff; color: #1e3a8a; padding: .1rem .4rem;
  border-radius: 4px; font-size: 1rem; font-weight: 600; }
.panel table { border-collapse: collapse; width: 100%; }
.panel th, .panel td { text-align: left; vertical-align: top; padding: .15rem .5rem .15rem 0;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem;
  border-bottom: 1px solid #eef0f2; }
.panel th { font-weight: 600; white-space: nowrap; width: 1%; }
/* Narrow screens: one column, the panel right under the flash. */
@media (max-width: 56rem) {
  main.home { grid-template-columns: 1fr; }
  .flash { order: -2; }
  .panel { order: -1; position: static; }
}
"#;

/// The "two tabs at once" button: the cart before, the burst in parallel, the cart after.
const SCRIPT: &str = r#"
const burst = document.getElementById('burst');
burst.addEventListener('click', async () => {
  const out = document.getElementById('burst-result');
  const n = Number(burst.dataset.n || 20);
  const count = async () => (await (await fetch('/cart')).json()).count;
  burst.disabled = true;
  out.className = '';
  out.textContent = 'sending ' + n + ' requests at once…';
  try {
    const before = await count();
    const answers = await Promise.all(Array.from({ length: n }, (_, i) =>
      fetch('/cart', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'item=' + (before + i + 1),
      }).then(response => response.ok, () => false)));
    const after = await count();
    const failed = answers.filter(ok => !ok).length;
    out.className = after - before === n ? 'ok' : 'bad';
    out.textContent = (after - before) + ' of ' + n + ' arrived'
      + (failed ? ' (' + failed + ' failed)' : '');
    document.getElementById('cart-count').textContent = after;
    document.getElementById('panel').innerHTML = await (await fetch('/panel')).text();
  } catch (error) {
    out.className = 'bad';
    out.textContent = 'failed: ' + error;
  } finally {
    burst.disabled = false;
  }
});
"#;

/// Everything a user typed must be escaped before it goes into HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A value as JSON, with a space after each comma of an array so that a long cart wraps.
fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(ToString::to_string).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A time as `2026-12-06 04:30:00 UTC`, without a date crate for one line of a demo.
fn utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil-date algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// A duration in its largest whole unit: `24 h`, `10 min`, `30 s`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}
