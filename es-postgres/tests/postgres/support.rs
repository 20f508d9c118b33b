//! The test harness: a PostgreSQL server and a fresh schema per test.
//!
//! With `DATABASE_URL` set, tests use that server. Otherwise they start a throwaway one from
//! the machine's server binaries (`initdb` and `postgres` on `PATH` or under
//! `/usr/lib/postgresql/*/bin`) in a temporary directory, as the `postgres` user when run as
//! root (initdb refuses root). A shell wrapper holds the server and reads our stdin: when
//! this test process exits, for any reason, the pipe closes and the wrapper stops the server
//! and removes the directory. Each test gets its own schema, so tests run in parallel.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use es_postgres::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

pub(crate) struct Server {
    pub(crate) url: String,
    /// Kept open for the life of the process: closing it stops the throwaway server.
    _guard: Option<Mutex<(Child, ChildStdin)>>,
}

/// The server, or why it could not be had (kept, so a failed start is not retried by every
/// test).
static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

pub(crate) fn server() -> &'static Server {
    let server = SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(Server { url, _guard: None }),
        _ => start_throwaway(),
    });
    match server {
        Ok(server) => server,
        Err(why) => panic!("{why}"),
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        // The newest major version.
        dirs.sort_by_key(|d| {
            d.parent()
                .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// (uid, gid) of the `postgres` user, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres")).then(|| {
                (
                    fields[2].parse().expect("uid"),
                    fields[3].parse().expect("gid"),
                )
            })
        })
        .expect("running as root: a `postgres` user must exist to run initdb (apt-get install postgresql creates it)")
}

/// `program args...`, as the postgres user when we are root.
fn command(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_throwaway() -> Result<Server, String> {
    let bin = find_bin_dir().ok_or(
        "no PostgreSQL for the tests: set DATABASE_URL to a running server \
         (e.g. postgres://postgres@127.0.0.1:5432/test), or install the server binaries \
         (Debian: apt-get install postgresql) so the tests can start a throwaway one",
    )?;
    let root = is_root();
    // /tmp, not $TMPDIR: the postgres user must be able to enter it, and the socket path
    // must stay short.
    let dir = Path::new("/tmp").join(format!(
        "es-postgres-test-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if root {
        let (uid, gid) = postgres_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let log = dir.join("server.log");

    initdb(&bin, root, &data)?;

    let (port, child, stdin) = launch(&bin, root, &data, &dir, &log, false)?;
    Ok(Server {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        _guard: Some(Mutex::new((child, stdin))),
    })
}

/// Serializes the tests that hold a transaction open on purpose: each asserts it is the one
/// holding the server-wide horizon.
pub(crate) async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A pool on the test server, retrying while it finishes starting up.
pub(crate) async fn pool(max: u32) -> PgPool {
    let url = &server().url;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgPoolOptions::new().max_connections(max).connect(url).await {
            Ok(pool) => return pool,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }
}

static CLEANED: OnceLock<()> = OnceLock::new();

/// Drops test schemas left over from earlier runs (their names carry a UUID v7, whose
/// timestamp says when): only those over an hour old, so parallel runs are left alone.
async fn drop_stale_schemas(pool: &PgPool) {
    if CLEANED.set(()).is_err() {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'es_test_%'")
            .fetch_all(pool)
            .await
            .expect("list schemas");
    let hour_ago = uuid::Uuid::now_v7()
        .get_timestamp()
        .map(|t| t.to_unix().0.saturating_sub(3600))
        .unwrap_or(0);
    for name in names {
        let created = uuid::Uuid::parse_str(name.trim_start_matches("es_test_"))
            .ok()
            .and_then(|u| u.get_timestamp())
            .map(|t| t.to_unix().0);
        if created.is_some_and(|c| c < hour_ago) {
            let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
            let _ = pool.execute(sqlx::AssertSqlSafe(drop)).await;
        }
    }
}

/// A migrated store in a schema of its own, with `max` connections.
pub(crate) async fn store_with(max: u32) -> PostgresStore {
    let pool = pool(max).await;
    drop_stale_schemas(&pool).await;
    let schema = format!("es_test_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::new(pool)
        .with_schema(&schema)
        .expect("valid schema");
    store.migrate().await.expect("migrations run");
    store
}

/// A migrated store in a schema of its own.
pub(crate) async fn store() -> PostgresStore {
    store_with(10).await
}

/// The global log once `enough` holds of it, or as it is after 30 s. The log stops at the
/// server-wide horizon: other tests' transactions (the late-commit tests hold one open on
/// purpose) hide what follows them until they end.
pub(crate) async fn settled_log(
    store: &PostgresStore,
    enough: impl Fn(&[es_core::RecordedEvent]) -> bool,
) -> Vec<es_core::RecordedEvent> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log: Vec<_> =
            futures::TryStreamExt::try_collect(es_core::EventStore::read_all(store, None))
                .await
                .expect("read_all");
        if enough(&log) || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints a line to the test's output even when the harness captures it (for figures the
/// test reports, such as conflict counts).
pub(crate) fn report(line: &str) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{line}");
}

/// A new cluster in `data`: user `postgres`, trust authentication (replication included).
fn initdb(bin: &Path, root: bool, data: &Path) -> Result<(), String> {
    let init = command(root, &bin.join("initdb"))
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-instructions",
        ])
        .output()
        .map_err(|e| format!("run initdb: {e}"))?;
    if init.status.success() {
        Ok(())
    } else {
        Err(format!(
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        ))
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts a server on `data` (in `dir`, logging to `log`) behind the wrapper that stops it
/// and removes `dir` when our stdin closes; waits until it accepts connections.
/// `synchronous_commit` off for the tests' own server (fast); on for a primary with a
/// standby, whose WAL then reaches the standby at each commit instead of with the WAL
/// writer's next round (200 ms later).
fn launch(
    bin: &Path,
    root: bool,
    data: &Path,
    dir: &Path,
    log: &Path,
    synchronous_commit: bool,
) -> Result<(u16, Child, ChildStdin), String> {
    let port = free_port();
    // The wrapper runs the server until its stdin closes, then stops it and cleans up.
    let script = r#"
        "$1" -D "$2" -p "$3" -k "$4" -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit="$6" -c full_page_writes=off -c max_connections=300 \
             -c max_prepared_transactions=10 \
             >>"$5" 2>&1 &
        pid=$!
        read -r _ || true
        kill -INT "$pid" 2>/dev/null
        wait "$pid"
        rm -rf "$4"
    "#;
    let mut child = command(root, Path::new("/bin/sh"))
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(bin.join("postgres"))
        .arg(data)
        .arg(port.to_string())
        .arg(dir)
        .arg(log)
        .arg(if synchronous_commit { "on" } else { "off" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    let stdin = child.stdin.take().ok_or("the wrapper's stdin")?;

    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let written = std::fs::read_to_string(log).unwrap_or_default();
        if written.contains("FATAL") || Instant::now() > deadline {
            // Dropping stdin stops the wrapper, which cleans up.
            return Err(format!(
                "the throwaway PostgreSQL did not start; its log:\n{written}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((port, child, stdin))
}

/// A throwaway primary and a hot standby streaming from it (`pg_basebackup -R`), always
/// started here (whatever `DATABASE_URL` says): their URLs.
pub(crate) struct Replicated {
    pub(crate) primary: String,
    pub(crate) standby: String,
    _guards: Mutex<Vec<(Child, ChildStdin)>>,
}

static REPLICATED: OnceLock<Result<Replicated, String>> = OnceLock::new();

pub(crate) fn replicated() -> &'static Replicated {
    match REPLICATED.get_or_init(start_replicated) {
        Ok(pair) => pair,
        Err(why) => panic!("{why}"),
    }
}

fn start_replicated() -> Result<Replicated, String> {
    // pg_basebackup beside initdb (a PATH entry may link only the server's own binaries).
    let bin = find_bin_dir()
        .map(|dir| {
            std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|real| real.parent().map(Path::to_path_buf))
                .filter(|real| real.join("pg_basebackup").is_file())
                .unwrap_or(dir)
        })
        .ok_or("no PostgreSQL server binaries for the replica tests")?;
    let root = is_root();
    // Two directories, each removed by its server's wrapper when it stops.
    let base = format!(
        "es-postgres-replica-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    );
    let primary_dir = Path::new("/tmp").join(format!("{base}-primary"));
    let standby_dir = Path::new("/tmp").join(format!("{base}-standby"));
    for d in [&primary_dir, &standby_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        if root {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", d.display()))?;
        }
    }
    let data = primary_dir.join("data");
    initdb(&bin, root, &data)?;
    let primary = launch(
        &bin,
        root,
        &data,
        &primary_dir,
        &primary_dir.join("server.log"),
        true,
    )?;
    let standby_data = standby_dir.join("data");
    let backup = command(root, &bin.join("pg_basebackup"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.0.to_string(),
            "-U",
            "postgres",
            "-D",
        ])
        .arg(&standby_data)
        .args(["-R", "-X", "stream", "--no-sync"])
        .output()
        .map_err(|e| format!("run pg_basebackup: {e}"))?;
    if !backup.status.success() {
        return Err(format!(
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        ));
    }
    let standby = launch(
        &bin,
        root,
        &standby_data,
        &standby_dir,
        &standby_dir.join("server.log"),
        true,
    )?;
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let pair = Replicated {
        primary: url(primary.0),
        standby: url(standby.0),
        _guards: Mutex::new(vec![(primary.1, primary.2), (standby.1, standby.2)]),
    };
    Ok(pair)
}

/// A `Noted` event with `payload` and a fresh id.
pub(crate) fn noted(payload: serde_json::Value) -> es_core::NewEvent {
    es_core::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "Noted".into(),
        schema_version: 1,
        payload,
        metadata: es_core::Metadata::default(),
    }
}
