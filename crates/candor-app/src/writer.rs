//! Group commit for ingestion. Requests hand their planned job to a writer task; the writer
//! takes every job that queued while the previous transaction committed and runs them all in
//! one transaction (one fsync). Each request is answered only after that commit, so an
//! acknowledged event is durable; throughput grows with concurrency instead of being capped
//! by the disk's flush rate.
//!
//! SQLite has one writer task (it has one writer connection anyway); PostgreSQL has several,
//! so independent groups commit in parallel.

use std::sync::Arc;

use candor_store::{AnyStore, Committed, IngestJob, Store};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{AppError, AppResult};

/// Largest group: jobs and events per transaction.
const MAX_JOBS: usize = 64;
const MAX_EVENTS: usize = 20_000;

type Reply = oneshot::Sender<AppResult<Committed>>;
type Queue = mpsc::Receiver<(IngestJob, usize, Reply)>;

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<(IngestJob, usize, Reply)>,
}

impl Writer {
    /// Starts the writer tasks on the current runtime.
    pub(crate) fn start(store: AnyStore) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let rx = Arc::new(Mutex::new(rx));
        let tasks = match store {
            AnyStore::Sqlite(_) => 1,
            AnyStore::Postgres(_) => 8,
        };
        for _ in 0..tasks {
            tokio::spawn(run(store.clone(), rx.clone()));
        }
        Self { tx }
    }

    /// Queues one job and waits for its group to commit.
    pub(crate) async fn submit(&self, job: IngestJob, n_events: usize) -> AppResult<Committed> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((job, n_events, reply))
            .await
            .map_err(|_| AppError::internal("ingest", &"the writer has stopped"))?;
        answer
            .await
            .map_err(|_| AppError::internal("ingest", &"the writer dropped a job"))?
    }
}

async fn run(store: AnyStore, rx: Arc<Mutex<Queue>>) {
    loop {
        let mut group = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut events = first.1;
            group.push(first);
            while group.len() < MAX_JOBS && events < MAX_EVENTS {
                match rx.try_recv() {
                    Ok(next) => {
                        events += next.1;
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
        }
        let (mut jobs, replies): (Vec<IngestJob>, Vec<Reply>) =
            group.into_iter().map(|(j, _, r)| (j, r)).unzip();
        // (the store logs each group's phases at debug level)
        match store.ingest_group(&mut jobs).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) if jobs.len() > 1 => {
                // One job may have poisoned the group: retry each alone.
                tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                for (job, reply) in jobs.iter_mut().zip(replies) {
                    let r = store
                        .ingest_group(std::slice::from_mut(job))
                        .await
                        .map(|mut v| v.pop().flatten())
                        .map_err(AppError::from);
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                let err = AppError::from(e);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
