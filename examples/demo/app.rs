//! The demo's routes, over any storage: what a session does, one page at a time.
//!
//! The forms carry no CSRF token: the cookie's default `SameSite=Lax` keeps browsers from
//! sending it with cross-site POSTs. A real app that accepts cross-site requests needs one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header::USER_AGENT};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use session_layer::{
    Error, Session, SessionCookie, SessionHandle, SessionIndex, SessionLayer, SessionStorage,
};

use super::sessions::Sessions;
use super::{device, page};

/// What the pages say about the server's setup.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The storage's name, as `SESSION_STORAGE` gives it.
    pub storage: String,
    /// How long a session lives after its last change.
    pub ttl: Duration,
}

/// What every route can reach.
struct Demo {
    settings: Settings,
    /// The storage a second time, to list and end a user's sessions; `None` for a storage
    /// that cannot.
    sessions: Option<Box<dyn Sessions>>,
}

/// The name of the demo's session cookie.
pub const COOKIE: &str = "__session";

/// The demo's session cookie, signed with `secret`.
pub fn cookie(secret: impl AsRef<[u8]>) -> SessionCookie {
    SessionCookie::new(COOKIE)
        .secrets([secret])
        // Only because this demo serves plain http://127.0.0.1: browsers (and curl's cookie
        // jar) do not send a `Secure` cookie back over http. Keep the default `Secure` in
        // production, behind HTTPS.
        .secure(false)
        .max_age(Duration::from_secs(7 * 24 * 3600))
}

/// The same routes over any storage. Fails when the cookie has no secret of 32 bytes or more.
pub fn app<St: SessionStorage>(
    cookie: SessionCookie,
    storage: St,
    settings: Settings,
) -> Result<Router, Error> {
    let demo = Demo {
        settings,
        sessions: None,
    };
    routes(cookie, storage, demo)
}

/// [`app`] with the "Where you are signed in" card, over a storage that can list and end a
/// user's sessions.
pub fn app_with_index<St: SessionIndex + Clone>(
    cookie: SessionCookie,
    storage: St,
    settings: Settings,
) -> Result<Router, Error> {
    let demo = Demo {
        settings,
        sessions: Some(Box::new(storage.clone())),
    };
    routes(cookie, storage, demo)
}

fn routes<St: SessionStorage>(
    cookie: SessionCookie,
    storage: St,
    demo: Demo,
) -> Result<Router, Error> {
    Ok(Router::new()
        .route("/", get(index))
        .route("/count", get(count))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/logged-out", get(logged_out))
        .route("/message", get(message_form).post(message))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/cart/clear", post(clear_cart))
        .route("/panel", get(panel))
        .route("/sessions/end", post(end_session))
        .route("/sessions/end-others", post(end_other_sessions))
        .with_state(Arc::new(demo))
        .layer(SessionLayer::try_new(cookie, storage)?))
}

/// The home page: every visit counts, so every visit saves the session.
async fn index(State(demo): State<Arc<Demo>>, session: Session) -> Result<Html<String>, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;
    let listed = match (&demo.sessions, session.owner()) {
        (Some(sessions), Some(user)) => Some(sessions.list(&user).await?),
        _ => None,
    };
    Ok(page::home(
        &session,
        &demo.settings,
        visits,
        listed.as_deref(),
    ))
}

/// The same counter as JSON, `{"visits":3}`: what `scripts/load` drives with `wrk`.
async fn count(session: Session) -> Result<Json<serde_json::Value>, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;
    Ok(Json(serde_json::json!({ "visits": visits })))
}

/// The session panel alone, for the page's script to refresh after the cart burst. It
/// touches the session, so that the expiry it shows (a TTL from now) is the stored one.
async fn panel(State(demo): State<Arc<Demo>>, session: Session) -> Result<Html<String>, Error> {
    session.touch()?;
    Ok(Html(page::panel(&session, &demo.settings)))
}

async fn login_form() -> Html<String> {
    page::login_form()
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

/// Signs in as the name given: the name is the session's owner, the user a storage with
/// `SessionIndex` lists sessions by.
async fn login(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Result<Redirect, Error> {
    let name = form.username.trim();
    if name.is_empty() {
        return Ok(Redirect::to("/login"));
    }
    // (A real app checks a password here.)
    session.set_owner(name)?;
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok());
    session.set("device", device::label(user_agent.unwrap_or_default()))?;
    // A new id after a privilege change, and the old id's data deleted: an id an attacker
    // planted before the login (session fixation) is worthless afterwards.
    session.regenerate_id(true)?;
    session.flash("notice", format!("Welcome, {name}"))?;
    // `Redirect::to` answers 303 See Other: the browser follows with a GET.
    Ok(Redirect::to("/"))
}

/// Deletes the stored data and clears the cookie. A destroyed session takes no more values,
/// so there is no flash: the page it leads to does not touch the session, so the browser
/// holds no session cookie until it goes home again.
async fn logout(session: Session) -> Redirect {
    session.destroy();
    Redirect::to("/logged-out")
}

#[derive(Deserialize)]
struct EndSession {
    // A missing field reads as empty, so that it gets the same 400 as any other bad handle.
    #[serde(default)]
    handle: String,
}

/// "Sign out" on another session's row. The handle comes from the client, so it may be
/// anything: a malformed one is a 400, and `end_session` ends nothing of another user.
async fn end_session(
    State(demo): State<Arc<Demo>>,
    session: Session,
    Form(form): Form<EndSession>,
) -> Result<Response, Error> {
    let handle: SessionHandle = match form.handle.parse() {
        Ok(handle) => handle,
        Err(invalid) => return Ok((StatusCode::BAD_REQUEST, invalid.to_string()).into_response()),
    };
    let Some(sessions) = &demo.sessions else {
        return Ok(cannot_list(&demo.settings));
    };
    let Some(user) = session.owner() else {
        session.flash("notice", "You are not signed in")?;
        return Ok(Redirect::to("/").into_response());
    };
    if handle == session.handle() {
        // Ending the session of this very request is a logout.
        session.destroy();
        return Ok(Redirect::to("/logged-out").into_response());
    }
    let notice = if sessions.end(&user, &handle).await? {
        "Signed out the other session"
    } else {
        "That session had already ended"
    };
    session.flash("notice", notice)?;
    Ok(Redirect::to("/").into_response())
}

/// "Sign out everywhere else": ends every other session of the user, and gives this one a
/// new id, so that a copy of this browser's cookie stops working too.
async fn end_other_sessions(
    State(demo): State<Arc<Demo>>,
    session: Session,
) -> Result<Response, Error> {
    let Some(sessions) = &demo.sessions else {
        return Ok(cannot_list(&demo.settings));
    };
    let Some(user) = session.owner() else {
        session.flash("notice", "You are not signed in")?;
        return Ok(Redirect::to("/").into_response());
    };
    let ended = sessions.end_others(&user, &session).await?;
    session.regenerate_id(true)?;
    let plural = if ended == 1 { "" } else { "s" };
    session.flash(
        "notice",
        format!("Signed out {ended} other session{plural}"),
    )?;
    Ok(Redirect::to("/").into_response())
}

/// The answer to a form that only a storage with `SessionIndex` serves.
fn cannot_list(settings: &Settings) -> Response {
    let message = format!(
        "the {} storage cannot list or end a user's sessions",
        settings.storage
    );
    (StatusCode::NOT_FOUND, message).into_response()
}

async fn logged_out() -> Html<String> {
    page::logged_out()
}

async fn message_form() -> Html<String> {
    page::message_form()
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

/// Post/Redirect/Get: the POST stores a flash and redirects; the GET that follows shows it
/// once, and reloading that page does not resubmit the form.
async fn message(session: Session, Form(form): Form<Message>) -> Result<Redirect, Error> {
    session.flash("notice", form.message)?;
    Ok(Redirect::to("/"))
}

/// The cart as JSON: `{"count":3,"items":[1,2,3]}`. Reading saves nothing.
async fn cart(session: Session) -> Json<serde_json::Value> {
    let items = session.get::<Vec<u32>>("cart").unwrap_or_default();
    Json(serde_json::json!({ "count": items.len(), "items": items }))
}

#[derive(Deserialize)]
struct Item {
    item: u32,
}

/// Adds one item. With `update`, a server-side storage adds it again to the cart as stored
/// at save time, so parallel requests (two tabs, a burst of `fetch`es) lose no item; a
/// `get` then `set` would keep only the last request's cart.
async fn add_to_cart(session: Session, Form(form): Form<Item>) -> Result<Json<usize>, Error> {
    let item = form.item;
    let cart = session.update("cart", move |cart: Option<Vec<u32>>| {
        let mut cart = cart.unwrap_or_default();
        cart.push(item);
        cart
    })?;
    // A real handler does work here (a price lookup, a database): the pause makes the
    // parallel requests overlap between their read and their save, as they would then.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(Json(cart.len()))
}

async fn clear_cart(session: Session) -> Result<Redirect, Error> {
    session.unset("cart")?;
    Ok(Redirect::to("/"))
}
