//! Shared by the test suites of several crates: a fresh store of each backend and an app.
//!
//! PostgreSQL: each store gets its own new database on the server named by
//! `CANDOR_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`). If the server
//! cannot be reached the test **fails**, unless `CANDOR_TEST_SKIP_PG=1` is set, in which case
//! it prints `SKIPPED-POSTGRES` (CI fails on that word).

#![allow(clippy::unwrap_used)]

pub mod bench;

use std::path::PathBuf;
use std::sync::Arc;

use candor_app::{App, ManualClock};
use candor_crypto::MasterKey;
use candor_policy::{DEFAULT_POLICY, Policy};
use candor_store::{AnyStore, PgStore, SqliteStore, Store};
use candor_types::Timestamp;
use sqlx::Connection as _;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A fresh store and what is needed to inspect its raw bytes afterwards.
pub struct TestDb {
    pub store: AnyStore,
    pub backend: Backend,
    /// SQLite: the database file.
    pub sqlite_path: Option<PathBuf>,
    /// PostgreSQL: the database URL.
    pub pg_url: Option<String>,
    _dir: Option<TempDir>,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("CANDOR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn skip_pg() -> bool {
    std::env::var("CANDOR_TEST_SKIP_PG").is_ok_and(|v| v == "1")
}

/// A new, empty PostgreSQL database; returns its URL, or `None` when skipping is allowed.
pub async fn fresh_pg_database() -> Option<String> {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if skip_pg() => {
            eprintln!("SKIPPED-POSTGRES: {e}");
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL at {admin} is unreachable ({e}); start it or set CANDOR_TEST_SKIP_PG=1"
        ),
    };
    let name = format!("candor_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    // Replace the database name, keeping any `?query` (e.g. `host=/var/run/postgresql`).
    let (path, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(p, q)| (p, Some(q)));
    let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
    Some(match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    })
}

impl TestDb {
    /// A fresh, migrated store; `None` only when PostgreSQL is skipped on purpose.
    pub async fn new(backend: Backend) -> Option<Self> {
        let db = match backend {
            Backend::Sqlite => {
                let dir = TempDir::new("candor-test");
                let path = dir.0.join("candor.db");
                let store = AnyStore::Sqlite(SqliteStore::open(&path).await.unwrap());
                Self {
                    store,
                    backend,
                    sqlite_path: Some(path),
                    pg_url: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = fresh_pg_database().await?;
                let store = AnyStore::Postgres(PgStore::connect(&url).await.unwrap());
                Self {
                    store,
                    backend,
                    sqlite_path: None,
                    pg_url: Some(url),
                    _dir: None,
                }
            }
        };
        db.store.migrate().await.unwrap();
        Some(db)
    }

    /// Every byte the database holds on disk (SQLite: file + WAL) or a plain-SQL dump of
    /// every table's rows (PostgreSQL, as `pg_dump --data-only` would show them).
    pub async fn raw_bytes(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let p = self.sqlite_path.as_ref().unwrap();
                let mut out = std::fs::read(p).unwrap();
                for ext in ["-wal", "-shm"] {
                    let mut q = p.clone().into_os_string();
                    q.push(ext);
                    if let Ok(b) = std::fs::read(PathBuf::from(q)) {
                        out.extend(b);
                    }
                }
                out
            }
            Backend::Postgres => {
                // What an operator's backup holds: `pg_dump` of the whole database.
                let url = self.pg_url.as_ref().unwrap();
                let out = std::process::Command::new("pg_dump")
                    .arg("--dbname")
                    .arg(url)
                    .output()
                    .expect("pg_dump is installed with PostgreSQL");
                assert!(
                    out.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }
}

/// An app over a fresh store with the default policy and a manual clock.
pub struct TestApp {
    pub app: App,
    pub clock: ManualClock,
    pub db: TestDb,
}

impl TestApp {
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::with_policy(backend, DEFAULT_POLICY).await
    }

    pub async fn with_policy(backend: Backend, policy: &str) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let clock = ManualClock::at(Timestamp::now());
        let policy = Policy::parse("candor.toml", policy).unwrap();
        let app = App::new(
            db.store.clone(),
            policy,
            MasterKey::generate().unwrap(),
            Arc::new(clock.clone()),
        );
        Some(Self { app, clock, db })
    }
}

impl TestDb {
    /// Runs raw SQL against the database, bypassing the store (to simulate tampering).
    pub async fn exec_raw(&self, sql: &str) -> u64 {
        exec_sql(&self.url(), sql).await
    }

    /// The database's URL: `postgres://…` or `sqlite://<file>`.
    pub fn url(&self) -> String {
        match (&self.pg_url, &self.sqlite_path) {
            (Some(url), _) => url.clone(),
            (None, Some(p)) => format!("sqlite://{}", p.display()),
            (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
        }
    }
}

/// Opens a connection of the right backend for `url` and evaluates `$body` with it.
macro_rules! on_connection {
    ($url:expr, |$c:ident| $body:expr) => {
        if $url.starts_with("sqlite://") {
            let mut $c = sqlx::SqliteConnection::connect($url).await.unwrap();
            $body
        } else {
            let mut $c = sqlx::PgConnection::connect($url).await.unwrap();
            $body
        }
    };
}

/// Runs raw SQL on the database at `url` (`postgres://…` or `sqlite://<file>`), bypassing the
/// store; returns the rows affected.
pub async fn exec_sql(url: &str, sql: &str) -> u64 {
    on_connection!(url, |c| sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap()
        .rows_affected())
}

/// The first column of every row of a query, as text, on the database at `url`.
pub async fn query_strings(url: &str, sql: &str) -> Vec<String> {
    on_connection!(url, |c| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.to_owned()
    ))
    .fetch_all(&mut c)
    .await
    .unwrap())
}

/// Drops a database made by [`fresh_pg_database`] (from a separate thread: callable in Drop).
pub fn drop_pg_database(url: &str) {
    let path = url.split('?').next().unwrap_or(url);
    let Some(name) = path.rsplit('/').next().map(str::to_owned) else {
        return;
    };
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await;
            }
        });
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(url) = self.pg_url.take() {
            drop_pg_database(&url);
        }
    }
}

/// The Python of the peer libraries (LightGBM, XGBoost, shap, …) that cross-check tests run:
/// `$CANDOR_PEERS_VENV` or `<workspace>/.peers-venv`, installed on first use with
/// `bench/peers-install.sh` (pinned versions from PyPI). With `CANDOR_SKIP_PEERS=1` and no
/// virtualenv it prints `SKIPPED-PEERS` (CI fails on that word) and returns `None`; if the
/// install fails, the test fails.
pub fn peers_python() -> Option<PathBuf> {
    static PY: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("CANDOR_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join(".peers-venv"));
    let py = venv.join("bin/python");
    if !py.exists() && std::env::var("CANDOR_SKIP_PEERS").as_deref() == Ok("1") {
        println!("SKIPPED-PEERS: no virtualenv at {}", venv.display());
        return None;
    }
    let got = PY.get_or_init(|| {
        if py.exists() {
            return Ok(py.clone());
        }
        // Serialize installs across test binaries running at the same time.
        let lock = workspace.join("target/.peers-install.lock");
        let _ = std::fs::create_dir_all(workspace.join("target"));
        let status = std::process::Command::new("flock")
            .arg(&lock)
            .arg("bash")
            .arg(workspace.join("bench/peers-install.sh"))
            .arg(&venv)
            .status()
            .map_err(|e| format!("cannot run bench/peers-install.sh: {e}"))?;
        if status.success() && py.exists() {
            Ok(py.clone())
        } else {
            Err(format!(
                "installing the peer libraries into {} failed ({status})",
                venv.display()
            ))
        }
    });
    match got {
        Ok(p) => Some(p.clone()),
        Err(e) => panic!("{e}; set CANDOR_SKIP_PEERS=1 to skip cross-checks locally"),
    }
}
