//! A TCP proxy in front of a server that a test can cut and restore, to play a database that
//! goes away and comes back.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Closes every open connection and each new one as soon as it arrives (with a reset), as
    /// a server that went away does.
    Cut,
    /// Keeps every connection open and forwards nothing, as a network that drops packets.
    Stall,
}

/// The proxy, on its own thread and runtime so that the test's runtime cannot slow it;
/// stopped when dropped.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    mode: Arc<watch::Sender<Mode>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on a free local port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Pass);
        let mode = Arc::new(mode);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let modes = Arc::clone(&mode);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                tokio::select! {
                    _ = stopped => {}
                    _ = accept_loop(listener, upstream, modes) => {}
                }
            });
        });
        Proxy {
            port,
            mode,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Switches every connection, open and new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, mode: Arc<watch::Sender<Mode>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(client, upstream, mode.subscribe()));
    }
}

/// One client connection, for as long as the mode lets it live.
async fn serve(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
    match current {
        Mode::Cut => return reset(client),
        Mode::Stall => return stall(client, mode).await,
        Mode::Pass => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let mut client = client;
    let next = tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => return,
        changed = mode.wait_for(|m| *m != Mode::Pass) => changed.map(|m| *m).unwrap_or(Mode::Cut),
    };
    drop(server);
    match next {
        Mode::Stall => stall(client, mode).await,
        _ => reset(client),
    }
}

/// Closes with a reset rather than a clean end, as a vanished server's host answers.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

/// Holds the connection, reading nothing, until the stall ends; then resets it, since what
/// was sent meanwhile is lost.
async fn stall(client: TcpStream, mut mode: watch::Receiver<Mode>) {
    let _ = mode.wait_for(|m| *m != Mode::Stall).await;
    reset(client);
}
