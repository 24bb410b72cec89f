//! A device label from the User-Agent header, such as "Chrome on Linux", for the list of
//! a user's sessions.

/// What `user_agent` says of its browser and system, in a few words; "Unknown browser" when
/// it names no browser this knows. The label is one of a fixed set of strings, never text
/// copied from the header, which any client can fill with anything.
pub fn label(user_agent: &str) -> String {
    let Some(browser) = browser(user_agent) else {
        return "Unknown browser".to_owned();
    };
    match system(user_agent) {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// The browser's name. Order matters: Edge and Opera also say "Chrome", Chrome also says
/// "Safari", and every browser on an iPhone is Safari's engine under another name.
fn browser(user_agent: &str) -> Option<&'static str> {
    let has = |token: &str| user_agent.contains(token);
    if has("Edg/") || has("EdgiOS/") || has("EdgA/") {
        Some("Edge")
    } else if has("OPR/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
        Some("Chrome")
    } else if has("Safari/") {
        Some("Safari")
    } else {
        None
    }
}

/// The operating system or device. Order matters: an iPhone says "like Mac OS X", and
/// Android and ChromeOS say "Linux".
fn system(user_agent: &str) -> Option<&'static str> {
    let has = |token: &str| user_agent.contains(token);
    if has("iPhone") {
        Some("iPhone")
    } else if has("iPad") {
        Some("iPad")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Macintosh") || has("Mac OS X") {
        Some("macOS")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    }
}
