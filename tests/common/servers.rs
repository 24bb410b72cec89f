//! Private server processes (redis-server, memcached) on free ports, stopped on drop; a
//! Redis Cluster and Sentinel are in `redis_ha`.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now, and never handed out before by this process.
///
/// Ports come from a per-process counter below the kernel's ephemeral range, so two tests
/// running at once never get the same port (asking the kernel for port 0 and releasing it
/// lets a parallel test draw it too: its server then fails to bind while the check that
/// the port is open succeeds against the other test's server).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 400) as u16 * 30;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + offset) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A server process of the test's own; killed when dropped.
pub struct ServerProcess {
    program: String,
    args: Vec<String>,
    pub port: u16,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `program` with `args` (where `{port}` is replaced by a free port) and waits
    /// until it accepts TCP connections.
    pub fn start(program: &str, args: &[&str]) -> ServerProcess {
        for _ in 0..5 {
            let port = free_port();
            let mut server = ServerProcess {
                program: program.to_owned(),
                args: args
                    .iter()
                    .map(|a| a.replace("{port}", &port.to_string()))
                    .collect(),
                port,
                child: None,
            };
            if server.try_spawn() {
                return server;
            }
            // Another process took the port between the check and the bind: next port.
        }
        panic!("{program} did not start on any of five free ports");
    }

    /// Starts the process and waits for its port; false when the process exited instead.
    fn try_spawn(&mut self) -> bool {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (is it installed? see scripts/test)",
                    self.program
                )
            });
        let child = self.child.insert(child);
        let limit = Duration::from_secs(10);
        let start = Instant::now();
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                self.child = None;
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Open, and still ours: a server that lost the port exits at once.
                std::thread::sleep(Duration::from_millis(20));
                return matches!(child.try_wait(), Ok(None));
            }
            assert!(
                start.elapsed() < limit,
                "{} on port {} did not start within {limit:?}",
                self.program,
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "{} could not start again on port {}",
            self.program,
            self.port
        );
    }

    /// Kills the process (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running (it has not been killed, nor exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the process in place (SIGSTOP): it keeps its sockets but answers nothing, as a
    /// stalled or lagging server does, until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a [paused](Self::pause) process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the process is running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Starts the process again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private `redis-server` that saves nothing to disk.
pub fn start_redis() -> ServerProcess {
    start_redis_with(&[])
}

/// A private `redis-server` that saves nothing to disk, with `extra` arguments.
pub fn start_redis_with(extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--port",
        "{port}",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start("redis-server", &args)
}

/// A key prefix no other test (or other user of a shared server) uses.
pub fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "session-layer-test:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs one command on a test's own Redis connection, beside the storage under test.
#[cfg(feature = "redis")]
pub async fn redis_cmd<T: redis::FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    name: &str,
    args: impl redis::ToRedisArgs,
) -> T {
    redis::cmd(name)
        .arg(args)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A private `memcached` on a free port, 16 MB of memory (`-u root` lets it start when the
/// tests run as root; it is ignored otherwise).
pub fn start_memcached() -> ServerProcess {
    start_memcached_with(&[])
}

/// A private `memcached` as [`start_memcached`] starts it, with `extra` arguments.
pub fn start_memcached_with(extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "-p",
        "{port}",
        "-l",
        "127.0.0.1",
        "-U",
        "0",
        "-m",
        "16",
        "-u",
        "root",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start("memcached", &args)
}
