//! Traffic for fault tests, judged per operation: workers that read a session, append a
//! unique operation number to a list in it with `update`, and save; a reader that touches
//! every session every 100 ms; and optional logins (`regenerate_id(true)`) among the writes.
//!
//! Every save is logged as acknowledged or failed, so that at the end each acknowledged
//! operation can be looked for in the stored session (lost if absent), and each operation
//! found must have been attempted: counters could hide a loss behind a failed save that was
//! stored anyway.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_layer::{Session, SessionStorage};
use tokio::sync::RwLock;
use tokio::task::JoinSet;

/// One request that failed.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Since the traffic started.
    pub at: Duration,
    pub session: usize,
    pub write: bool,
    pub message: String,
}

/// What the traffic saw.
#[derive(Default)]
pub struct Log {
    /// (session, worker, op) of every save that answered `Ok`.
    pub acknowledged: Vec<(usize, usize, u64)>,
    /// (session, worker, op) of every save that failed: stored or not, nobody knows.
    pub indeterminate: Vec<(usize, usize, u64)>,
    pub failures: Vec<Failure>,
    pub reads: u64,
    pub logins: u64,
}

/// Sessions under traffic: their current ids (a login changes one).
pub struct Traffic<S> {
    storage: Arc<S>,
    ids: Arc<Vec<RwLock<String>>>,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    next_op: Arc<AtomicU64>,
    started: Instant,
    tasks: JoinSet<()>,
}

/// The longest a request may take before it counts as hung.
const HUNG: Duration = Duration::from_secs(10);

impl<S: SessionStorage> Traffic<S> {
    /// Creates `sessions` sessions (each with an empty list per worker).
    pub async fn create(storage: S, sessions: usize) -> Self {
        Self::create_padded(storage, sessions, 0).await
    }

    /// Creates `sessions` sessions that each carry `padding` bytes more, which every save
    /// writes again: a replication stream that outgrows the sockets' buffers.
    pub async fn create_padded(storage: S, sessions: usize, padding: usize) -> Self {
        let mut ids = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let session = Session::new();
            session.set("created", true).unwrap();
            if padding > 0 {
                session.set("padding", "x".repeat(padding)).unwrap();
            }
            let id = storage.save(&session).await.expect("create a session");
            ids.push(RwLock::new(id.expect("a new session's id")));
        }
        Traffic {
            storage: Arc::new(storage),
            ids: Arc::new(ids),
            log: Arc::default(),
            stop: Arc::default(),
            next_op: Arc::default(),
            started: Instant::now(),
            tasks: JoinSet::new(),
        }
    }

    /// The storage under traffic.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The sessions' current ids.
    pub async fn ids(&self) -> Vec<String> {
        let mut ids = Vec::with_capacity(self.ids.len());
        for id in self.ids.iter() {
            ids.push(id.read().await.clone());
        }
        ids
    }

    /// Since [`start`](Self::start).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts `workers` writers and the reader; one write in `login_every` (0: none) is a
    /// login that moves the session to a new id.
    pub fn start(&mut self, workers: usize, login_every: u64) {
        self.started = Instant::now();
        for worker in 0..workers {
            let this = self.handle();
            self.tasks.spawn(async move {
                let mut n = worker as u64;
                while !this.stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let session = (n >> 33) as usize % this.ids.len();
                    if login_every > 0 && (n >> 20).is_multiple_of(login_every) {
                        this.login(session).await;
                    } else {
                        this.write(worker, session).await;
                    }
                }
            });
        }
        let this = self.handle();
        self.tasks.spawn(async move {
            while !this.stop.load(Ordering::Relaxed) {
                let round = tokio::time::sleep(Duration::from_millis(100));
                let mut reads = JoinSet::new();
                for session in 0..this.ids.len() {
                    let this = this.handle();
                    reads.spawn(async move { this.read(session).await });
                }
                while reads.join_next().await.is_some() {}
                round.await;
            }
        });
    }

    /// Stops the traffic and answers its log.
    pub async fn stop(mut self) -> (Log, Vec<String>, Arc<S>) {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("a traffic task panicked");
        }
        let ids = self.ids().await;
        let log = std::mem::take(&mut *self.log.lock().unwrap());
        (log, ids, self.storage)
    }

    fn handle(&self) -> Self {
        Traffic {
            storage: self.storage.clone(),
            ids: self.ids.clone(),
            log: self.log.clone(),
            stop: self.stop.clone(),
            next_op: self.next_op.clone(),
            started: self.started,
            tasks: JoinSet::new(),
        }
    }

    fn fail(&self, session: usize, write: bool, message: String) {
        self.log.lock().unwrap().failures.push(Failure {
            at: self.started.elapsed(),
            session,
            write,
            message,
        });
    }

    async fn read(&self, session: usize) {
        // Held through the read, so that a login cannot move the session meanwhile.
        let id = self.ids[session].read().await;
        match tokio::time::timeout(HUNG, self.storage.read(Some(&id))).await {
            Ok(Ok(loaded)) if loaded.has("created") => self.log.lock().unwrap().reads += 1,
            Ok(Ok(_)) => self.fail(session, false, "the session was gone".into()),
            Ok(Err(e)) => self.fail(session, false, e.to_string()),
            Err(_) => self.fail(session, false, "hung".into()),
        }
    }

    async fn write(&self, worker: usize, session: usize) {
        let op = self.next_op.fetch_add(1, Ordering::Relaxed);
        let id = self.ids[session].read().await;
        let request = async {
            let loaded = self.storage.read(Some(&id)).await?;
            if !loaded.has("created") {
                return Ok(Err("the session was gone".to_owned()));
            }
            loaded
                .update(format!("w{worker}"), move |ops: Option<Vec<u64>>| {
                    let mut ops = ops.unwrap_or_default();
                    ops.push(op);
                    ops
                })
                .unwrap();
            self.storage.save(&loaded).await.map(|_| Ok(()))
        };
        let outcome = tokio::time::timeout(HUNG, request).await;
        let mut log = self.log.lock().unwrap();
        match outcome {
            Ok(Ok(Ok(()))) => log.acknowledged.push((session, worker, op)),
            failed => {
                log.indeterminate.push((session, worker, op));
                drop(log);
                let message = match failed {
                    Ok(Ok(Err(message))) => message,
                    Ok(Err(e)) => e.to_string(),
                    _ => "hung".into(),
                };
                self.fail(session, true, message);
            }
        }
    }

    /// A login: the session moves to a new id (`regenerate_id(true)`), alone.
    async fn login(&self, session: usize) {
        let mut id = self.ids[session].write().await;
        let request = async {
            let loaded = self.storage.read(Some(&id)).await?;
            loaded.regenerate_id(true)?;
            let new_id = loaded.id();
            let saved = self.storage.save(&loaded).await;
            Ok::<_, session_layer::Error>((new_id, saved))
        };
        match tokio::time::timeout(HUNG, request).await {
            Ok(Ok((new_id, Ok(_)))) => {
                *id = new_id;
                self.log.lock().unwrap().logins += 1;
            }
            Ok(Ok((new_id, Err(e)))) => {
                // Indeterminate: the session is under one of the two ids, whichever holds it.
                if let Ok(Ok(moved)) =
                    tokio::time::timeout(HUNG, self.storage.read(Some(&new_id))).await
                    && moved.has("created")
                {
                    *id = new_id;
                }
                self.fail(session, true, format!("login: {e}"));
            }
            Ok(Err(e)) => self.fail(session, true, format!("login: {e}")),
            Err(_) => self.fail(session, true, "login hung".into()),
        }
    }
}

/// The operations judged at the end.
#[derive(Debug, Default)]
pub struct Verdict {
    pub acknowledged: usize,
    /// Acknowledged operations missing from the stored sessions.
    pub lost: usize,
    /// Sessions that could not be read at the end, or were gone.
    pub unreadable: usize,
    /// Failed saves found stored anyway.
    pub stored_after_error: usize,
    /// Operations found that nobody attempted: a bug in the storage or the traffic.
    pub phantom: usize,
}

impl Verdict {
    /// Every acknowledged operation and every session is still there, and nothing appeared
    /// that nobody wrote.
    pub fn assert_nothing_lost(&self) {
        assert_eq!(self.lost, 0, "acknowledged writes lost: {self:?}");
        assert_eq!(self.unreadable, 0, "sessions lost: {self:?}");
        assert_eq!(self.phantom, 0, "writes nobody made: {self:?}");
    }
}

/// Reads every session and judges every operation of `log`.
pub async fn verdict<S: SessionStorage>(storage: &S, ids: &[String], log: &Log) -> Verdict {
    let mut stored: HashMap<usize, HashSet<(usize, u64)>> = HashMap::new();
    let mut verdict = Verdict {
        acknowledged: log.acknowledged.len(),
        ..Verdict::default()
    };
    for (session, id) in ids.iter().enumerate() {
        let mut ops = HashSet::new();
        match storage.read(Some(id)).await {
            Ok(loaded) if loaded.has("created") => {
                for (key, value) in loaded.data().values {
                    let Some(worker) = key.strip_prefix('w').and_then(|w| w.parse().ok()) else {
                        continue;
                    };
                    let list: Vec<u64> = serde_json::from_value(value).unwrap();
                    ops.extend(list.into_iter().map(|op| (worker, op)));
                }
            }
            _ => verdict.unreadable += 1,
        }
        stored.insert(session, ops);
    }
    let attempted: HashSet<(usize, usize, u64)> = log
        .acknowledged
        .iter()
        .chain(&log.indeterminate)
        .copied()
        .collect();
    for &(session, worker, op) in &log.acknowledged {
        if !stored[&session].contains(&(worker, op)) {
            verdict.lost += 1;
        }
    }
    for &(session, worker, op) in &log.indeterminate {
        if stored[&session].contains(&(worker, op)) {
            verdict.stored_after_error += 1;
        }
    }
    for (&session, ops) in &stored {
        verdict.phantom += ops
            .iter()
            .filter(|&&(worker, op)| !attempted.contains(&(session, worker, op)))
            .count();
    }
    verdict
}
