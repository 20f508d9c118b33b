//! PgBouncer for the tests, and stores that reach PostgreSQL through it with `LISTEN` off
//! and their migrations run apart, on a direct connection.
//!
//! With `PGBOUNCER_URL` set, tests use that PgBouncer; it must stand in front of the server
//! `DATABASE_URL` names (the migrations run there, directly). Otherwise they start one from
//! the machine's `pgbouncer` binary (on `PATH` or `/usr/sbin`; Debian: `apt-get install
//! pgbouncer`) in front of the harness's server (`DATABASE_URL`, or a throwaway one), as the
//! `postgres` user when run as root (PgBouncer refuses root). As in `support`, a shell
//! wrapper holds it and reads our stdin: when this test process exits, the wrapper stops it
//! and removes its directory. With neither, the tests fail and say what to install.
//!
//! The pool mode is `ES_PGBOUNCER_POOL_MODE` (that of the PgBouncer at `PGBOUNCER_URL`, or
//! the one to start): `transaction` by default, the mode the store is built for behind a
//! proxy ([`PostgresStore::with_transaction_pooling`]: each statement in a transaction of its
//! own, none prepared by name). `session` runs the same suite on a session-pooling PgBouncer.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use es_postgres::PostgresStore;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support;

pub(crate) struct Bouncer {
    pub(crate) url: String,
    /// Kept open for the life of the process: closing it stops the PgBouncer we started.
    _guard: Option<Mutex<(Child, ChildStdin)>>,
}

static BOUNCER: OnceLock<Result<Bouncer, String>> = OnceLock::new();

pub(crate) fn bouncer() -> &'static Bouncer {
    let bouncer = BOUNCER.get_or_init(|| match std::env::var("PGBOUNCER_URL") {
        Ok(url) if !url.trim().is_empty() => {
            if std::env::var("DATABASE_URL").is_ok_and(|u| !u.trim().is_empty()) {
                Ok(Bouncer { url, _guard: None })
            } else {
                Err(
                    "PGBOUNCER_URL is set but DATABASE_URL is not: set DATABASE_URL to the \
                     server behind that PgBouncer (the migrations run on it directly)"
                        .to_owned(),
                )
            }
        }
        _ => start(&support::server().url),
    });
    match bouncer {
        Ok(bouncer) => bouncer,
        Err(why) => panic!("{why}"),
    }
}

fn find_pgbouncer() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbouncer"))
            .find(|bin| bin.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|bin| bin.is_file()))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// (uid, gid) of the `postgres` user, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&"postgres") {
                return None;
            }
            Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        })
        .ok_or_else(|| "running as root: a `postgres` user must exist to run pgbouncer".to_owned())
}

/// A free port on 127.0.0.1 (free now; PgBouncer binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn start(upstream: &str) -> Result<Bouncer, String> {
    let bin = find_pgbouncer().ok_or(
        "no PgBouncer for the tests: set PGBOUNCER_URL (with DATABASE_URL) to a PgBouncer in \
         front of that server (`bash .ci/pgbouncer.sh` starts one), or install it (Debian: \
         apt-get install pgbouncer) so the tests can start one",
    )?;
    let up = PgConnectOptions::from_str(upstream).map_err(|e| format!("{upstream}: {e}"))?;
    let user = up.get_username().to_owned();
    let database = up.get_database().unwrap_or(&user).to_owned();

    let dir = Path::new("/tmp").join(format!(
        "es-pgbouncer-test-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let port = free_port();
    let config = dir.join("pgbouncer.ini");
    let users = dir.join("userlist.txt");
    // Trust: no password is checked, but the user must be listed in the auth file.
    std::fs::write(&users, format!("\"{user}\" \"\"\n")).map_err(|e| e.to_string())?;
    std::fs::write(
        &config,
        format!(
            "[databases]\n\
             {database} = host={host} port={up_port} dbname={database}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = {mode}\n\
             max_client_conn = 400\n\
             default_pool_size = 20\n\
             ignore_startup_parameters = extra_float_digits\n",
            mode = pool_mode(),
            host = up.get_host(),
            up_port = up.get_port(),
            users = users.display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let root = is_root();
    if root {
        let (uid, gid) = postgres_user()?;
        for path in [&dir, &config, &users] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
    }
    let log = dir.join("pgbouncer.log");

    // The wrapper runs PgBouncer until its stdin closes, then stops it (SIGTERM: at once,
    // its clients are gone) and cleans up.
    let script = r#"
        "$1" "$2" >>"$3" 2>&1 &
        pid=$!
        read -r _ || true
        kill -TERM "$pid" 2>/dev/null
        wait "$pid"
        rm -rf "$4"
    "#;
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "/bin/sh"]);
        c
    } else {
        Command::new("/bin/sh")
    };
    let mut child = command
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(&bin)
        .arg(&config)
        .arg(&log)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start pgbouncer: {e}"))?;
    let stdin = child.stdin.take().ok_or("the wrapper's stdin")?;

    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let written = std::fs::read_to_string(&log).unwrap_or_default();
        if written.contains("FATAL") || written.contains("ERROR") || Instant::now() > deadline {
            return Err(format!("PgBouncer did not start; its log:\n{written}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Bouncer {
        url: format!("postgres://{user}@127.0.0.1:{port}/{database}"),
        _guard: Some(Mutex::new((child, stdin))),
    })
}

/// `session` or `transaction`: see the module docs.
pub(crate) fn pool_mode() -> &'static str {
    static MODE: OnceLock<String> = OnceLock::new();
    MODE.get_or_init(|| match std::env::var("ES_PGBOUNCER_POOL_MODE") {
        Ok(mode) if mode == "session" || mode == "transaction" => mode,
        Ok(mode) if !mode.trim().is_empty() => {
            panic!("ES_PGBOUNCER_POOL_MODE={mode}: expected `session` or `transaction`")
        }
        _ => "transaction".to_owned(),
    })
}

/// The connection options through PgBouncer.
fn options() -> PgConnectOptions {
    let url = &bouncer().url;
    let options =
        PgConnectOptions::from_str(url).unwrap_or_else(|e| panic!("PGBOUNCER_URL {url}: {e}"));
    if pool_mode() == "transaction" {
        // Each transaction gets whichever server connection is free: a statement cached on
        // one is unknown on the next (the store prepares none by name there either).
        options.statement_cache_capacity(0)
    } else {
        options
    }
}

/// A pool through PgBouncer, retrying while the server behind it finishes starting up.
pub(crate) async fn pool(max: u32) -> PgPool {
    let options = options();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgPoolOptions::new()
            .max_connections(max)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return pool,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot connect through PgBouncer at {}: {e}", bouncer().url),
        }
    }
}

/// A store through PgBouncer in `schema` (migrated already), with `LISTEN` off (a
/// transaction-pooling PgBouncer cannot keep a listening session; in session mode the
/// suite checks the same configuration).
pub(crate) async fn store_in(schema: &str) -> PostgresStore {
    PostgresStore::new(pool(10).await)
        .with_schema(schema)
        .expect("valid schema")
        .with_listen(false)
        .with_transaction_pooling(pool_mode() == "transaction")
}

/// A store through PgBouncer in a fresh schema, migrated apart on a direct connection (the
/// migrations hold a session-level lock, which transaction pooling cannot keep).
pub(crate) async fn store() -> PostgresStore {
    let schema = format!("es_test_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::new(support::pool(1).await)
        .with_schema(&schema)
        .expect("valid schema")
        .migrate()
        .await
        .expect("migrations run on the direct connection");
    store_in(&schema).await
}
