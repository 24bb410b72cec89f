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
    _server: Background,
}

impl Proxy {
    /// A proxy on a free local port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let (mode, _) = watch::channel(Mode::Pass);
        let mode = Arc::new(mode);
        let modes = Arc::clone(&mode);
        let (port, server) =
            Background::start(move |listener| accept_loop(listener, upstream, modes));
        Proxy {
            port,
            mode,
            _server: server,
        }
    }

    /// Switches every connection, open and new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// A server on its own thread and runtime, so that the test's runtime cannot slow it;
/// stopped when dropped.
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Runs `serve` on a listener on a free local port; returns the port.
    fn start<F, Fut>(serve: F) -> (u16, Background)
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                tokio::select! {
                    _ = stopped => {}
                    _ = serve(listener) => {}
                }
            });
        });
        let background = Background {
            stop: Some(stop),
            thread: Some(thread),
        };
        (port, background)
    }
}

impl Drop for Background {
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

/// A TCP proxy that delays everything a client sends by a fixed latency (replies pass at
/// once), so that a test counts round trips by the time a sequence of requests takes:
/// pipelined commands share one delay, commands sent one after another add theirs.
pub struct LatencyProxy {
    /// The port clients connect to.
    pub port: u16,
    _server: Background,
}

impl LatencyProxy {
    /// A proxy on a free local port, forwarding to `upstream` after `latency`.
    pub fn start(upstream: SocketAddr, latency: std::time::Duration) -> LatencyProxy {
        let (port, server) = Background::start(move |listener| async move {
            loop {
                if let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(delay_line(client, upstream, latency));
                }
            }
        });
        LatencyProxy {
            port,
            _server: server,
        }
    }
}

/// One connection: what the client sends reaches the server `latency` after it was read,
/// chunks in their order, each on its own clock (a delay line, not a queue of pauses).
async fn delay_line(client: TcpStream, upstream: SocketAddr, latency: std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (chunks, mut delayed) = tokio::sync::mpsc::unbounded_channel();
    let read = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n) = client_read.read(&mut buffer).await {
            if n == 0
                || chunks
                    .send((tokio::time::Instant::now() + latency, buffer[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    };
    let forward = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if server_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(read, forward, back);
}
