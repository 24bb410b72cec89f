//! The demo end to end in a real browser: the demo's router served in-process over the
//! memory storage, and headless Chromium clicking through it as a visitor would, then as
//! one user on two devices.
//!
//! Leaves a screenshot of the home page after login and the cart burst in
//! `target/tmp/demo.png`, and one of a user's two sessions in `target/tmp/demo-sessions.png`.
#![cfg(feature = "axum")]

#[allow(dead_code)]
#[path = "../../examples/demo/app.rs"]
mod app;
#[path = "../../examples/demo/device.rs"]
mod device;
mod driver;
#[allow(dead_code)]
#[path = "../../examples/demo/page.rs"]
mod page;
#[path = "../../examples/demo/sessions.rs"]
mod sessions;

use std::path::Path;
use std::time::Duration;

use fantoccini::{Client, Locator};
use session_layer::MemoryStorage;

type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The User-Agent of the second device, so that its row has a label of its own.
const FIREFOX_ON_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_a_browser() {
    let Some(browser) = driver::start().await else {
        return;
    };
    let base = serve_demo().await;
    let client = browser.client.clone();
    run(browser, visit(client, base)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_signs_out_another_device() {
    let Some(mut browser) = driver::start().await else {
        return;
    };
    let user_agent = format!("--user-agent={FIREFOX_ON_WINDOWS}");
    let other = browser.another(&[&user_agent]).await;
    let base = serve_demo().await;
    let client = browser.client.clone();
    run(browser, two_devices(client, other, base)).await;
}

/// Runs `visit` in its own task, so that the browser is closed even when it fails, and
/// fails as it failed.
async fn run(browser: driver::Browser, visit: impl Future<Output = Outcome> + Send + 'static) {
    let visit = tokio::spawn(tokio::time::timeout(Duration::from_secs(60), visit)).await;
    browser.quit(!matches!(visit, Ok(Ok(Ok(()))))).await;
    match visit {
        Ok(Ok(outcome)) => outcome.expect("the browser could do what the visit asked"),
        Ok(Err(_)) => panic!("the visit took over 60 s"),
        Err(failure) => std::panic::resume_unwind(failure.into_panic()),
    }
}

/// The demo's router with a fresh memory storage, on a free port; its base URL.
async fn serve_demo() -> String {
    let ttl = Duration::from_secs(3600);
    let settings = app::Settings {
        storage: "memory".into(),
        ttl,
    };
    let secret: String = (0..64)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    let storage = MemoryStorage::new().ttl(ttl);
    let router =
        app::app_with_index(app::cookie(secret), storage, settings).expect("the demo's router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// One visitor, step by step: counter, flash, login, cart burst, logout.
async fn visit(browser: Client, base: String) -> Outcome {
    let home = format!("{base}/");

    // The counter counts each visit.
    browser.goto(&home).await?;
    assert_eq!(text(&browser, "visits").await?, "1", "first visit");
    assert_eq!(
        text(&browser, "session-state").await?,
        "new: started by this request"
    );
    browser.refresh().await?;
    assert_eq!(text(&browser, "visits").await?, "2", "after a reload");
    assert_eq!(
        text(&browser, "session-state").await?,
        "loaded from storage"
    );

    // A flash message shows once, on the page the form leads to, and is gone on reload.
    fill(&browser, "message", "Hello from the browser").await?;
    browser.find(Locator::Id("send")).await?.click().await?;
    wait_for(&browser, "#flash").await?;
    assert_eq!(text(&browser, "flash").await?, "Hello from the browser");
    assert!(
        text(&browser, "session-flash")
            .await?
            .contains("Hello from the browser")
    );
    browser.refresh().await?;
    assert!(
        browser.find_all(Locator::Id("flash")).await?.is_empty(),
        "the flash is gone on reload"
    );
    assert!(text(&browser, "session-flash").await?.contains("none"));

    // Login gives the session a new id: the panel and the cookie both change.
    let id_before = text(&browser, "session-id").await?;
    let cookie_before = session_cookie(&browser)
        .await?
        .expect("a cookie before login");
    fill(&browser, "username", "ann").await?;
    browser.find(Locator::Id("login")).await?.click().await?;
    wait_for(&browser, "#user").await?;
    assert_eq!(text(&browser, "user").await?, "ann");
    assert_eq!(text(&browser, "flash").await?, "Welcome, ann");
    let id_after = text(&browser, "session-id").await?;
    assert_eq!(
        id_after.chars().count(),
        9,
        "8 characters and an ellipsis: {id_after}"
    );
    assert_ne!(id_before, id_after, "login regenerates the id");
    let cookie_after = session_cookie(&browser)
        .await?
        .expect("a cookie after login");
    assert_ne!(cookie_before, cookie_after, "login sends a new cookie");
    assert_eq!(this_device(&browser).await?, "Chrome on Linux");
    assert_eq!(devices(&browser).await?, ["Chrome on Linux"], "one session");

    // Twenty parallel requests each add an item through `update`: all twenty arrive.
    browser.find(Locator::Id("burst")).await?.click().await?;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#burst-result.ok, #burst-result.bad"))
        .await?;
    assert_eq!(text(&browser, "burst-result").await?, "20 of 20 arrived");
    assert_eq!(text(&browser, "cart-count").await?, "20");
    let cart = browser
        .execute(
            "return fetch('/cart').then(response => response.json())",
            vec![],
        )
        .await?;
    let mut items: Vec<u64> = serde_json::from_value(cart["items"].clone())?;
    items.sort_unstable();
    assert_eq!(items, (1..=20).collect::<Vec<_>>(), "each item once");
    assert_eq!(
        text(&browser, "session-id").await?,
        id_after,
        "the burst keeps the id"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo.png");
    std::fs::write(&shot, browser.screenshot().await?)?;
    eprintln!("screenshot: {}", shot.display());

    // Logout destroys the session: the browser holds no session cookie afterwards, and the
    // next visit starts a fresh session under another id.
    browser.find(Locator::Id("logout")).await?.click().await?;
    wait_for(&browser, "#logged-out").await?;
    assert_eq!(
        session_cookie(&browser).await?,
        None,
        "logout clears the cookie"
    );
    browser.goto(&home).await?;
    assert_eq!(text(&browser, "visits").await?, "1", "a fresh session");
    assert_eq!(
        text(&browser, "session-state").await?,
        "new: started by this request"
    );
    assert!(browser.find_all(Locator::Id("user")).await?.is_empty());
    let id_fresh = text(&browser, "session-id").await?;
    assert_ne!(id_fresh, id_after, "a new id after logout");
    assert_eq!(text(&browser, "cart-count").await?, "0");
    Ok(())
}

/// One user, "bea", on two devices: the first lists both sessions and signs the other out
/// with its row's button, then, after a new login there, with "Sign out everywhere else";
/// each time the other device's next request finds it signed out.
async fn two_devices(laptop: Client, other: Client, base: String) -> Outcome {
    let home = format!("{base}/");
    log_in(&laptop, &home, "bea").await?;
    log_in(&other, &home, "bea").await?;

    laptop.goto(&home).await?;
    let mut listed = devices(&laptop).await?;
    listed.sort();
    assert_eq!(listed, ["Chrome on Linux", "Firefox on Windows"]);
    assert_eq!(this_device(&laptop).await?, "Chrome on Linux");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-sessions.png");
    std::fs::write(&shot, laptop.screenshot().await?)?;
    eprintln!("screenshot: {}", shot.display());

    laptop
        .find(Locator::Css("#sessions tr:not(.this) button.sign-out"))
        .await?
        .click()
        .await?;
    wait_for(&laptop, "#flash").await?;
    assert_eq!(
        text(&laptop, "flash").await?,
        "Signed out the other session"
    );
    assert_eq!(devices(&laptop).await?, ["Chrome on Linux"]);
    assert!(laptop.find_all(Locator::Id("end-others")).await?.is_empty());
    assert_signed_out(&other, &home).await?;

    log_in(&other, &home, "bea").await?;
    laptop.goto(&home).await?;
    assert_eq!(devices(&laptop).await?.len(), 2, "the other device is back");
    laptop
        .find(Locator::Id("end-others"))
        .await?
        .click()
        .await?;
    wait_for(&laptop, "#flash").await?;
    assert_eq!(text(&laptop, "flash").await?, "Signed out 1 other session");
    assert_eq!(devices(&laptop).await?, ["Chrome on Linux"]);
    assert_eq!(text(&laptop, "user").await?, "bea", "this device stays in");
    assert_signed_out(&other, &home).await?;
    Ok(())
}

/// Logs in as `user` from the home page.
async fn log_in(browser: &Client, home: &str, user: &str) -> Outcome {
    browser.goto(home).await?;
    fill(browser, "username", user).await?;
    browser.find(Locator::Id("login")).await?.click().await?;
    wait_for(browser, "#user").await?;
    Ok(())
}

/// Loads the home page and finds it signed out: a fresh session, with no owner.
async fn assert_signed_out(browser: &Client, home: &str) -> Outcome {
    browser.goto(home).await?;
    assert!(
        browser.find_all(Locator::Id("user")).await?.is_empty(),
        "the other device is signed out"
    );
    assert_eq!(
        text(browser, "session-state").await?,
        "new: started by this request"
    );
    assert_eq!(text(browser, "session-owner").await?, "none");
    Ok(())
}

/// The device labels of the "Where you are signed in" card, in its order.
async fn devices(browser: &Client) -> Result<Vec<String>, fantoccini::error::CmdError> {
    let mut labels = Vec::new();
    for cell in browser
        .find_all(Locator::Css("#sessions td.device"))
        .await?
    {
        labels.push(cell.text().await?);
    }
    Ok(labels)
}

/// The label of the row marked "this device".
async fn this_device(browser: &Client) -> Result<String, fantoccini::error::CmdError> {
    browser
        .find(Locator::Css("#sessions tr.this td.device"))
        .await?
        .text()
        .await
}

/// The text of the element with this id.
async fn text(browser: &Client, id: &str) -> Result<String, fantoccini::error::CmdError> {
    browser.find(Locator::Id(id)).await?.text().await
}

/// Types `value` into the input named `name`.
async fn fill(browser: &Client, name: &str, value: &str) -> Outcome {
    let selector = format!("input[name={name}]");
    browser
        .find(Locator::Css(&selector))
        .await?
        .send_keys(value)
        .await?;
    Ok(())
}

/// Waits for the page a click leads to.
async fn wait_for(browser: &Client, selector: &str) -> Result<(), fantoccini::error::CmdError> {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(selector))
        .await
        .map(drop)
}

/// The session cookie's value as the browser holds it (through WebDriver: it is `HttpOnly`,
/// so the page's own script cannot see it).
async fn session_cookie(browser: &Client) -> Result<Option<String>, fantoccini::error::CmdError> {
    Ok(browser
        .get_all_cookies()
        .await?
        .into_iter()
        .find(|cookie| cookie.name() == app::COOKIE)
        .map(|cookie| cookie.value().to_owned()))
}
