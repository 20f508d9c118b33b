//! Commands through the `Repository` on PostgreSQL, next to the floor in the same run: one
//! prepared single-row `INSERT` per transaction (and a 100-row one), with as many writers.
//! One-event commands with 1, 4, 16 and 64 writers on aggregates of their own (10 commands
//! each, as the peers' harness does), 64 writers on 8 hot streams (with retry), with and
//! without the aggregate cache (`with_cache`) and group commit (`with_group_commit`);
//! 10-event commands; loading a 10,000-event aggregate beside a raw `SELECT` + deserialize of
//! its rows; and one-event appends straight to the store at 1-64 writers, one transaction
//! per append against group commit. Prints tables (commands/s, events/s, p50/p99 latency,
//! conflicts, ratio to the floor), and last the line `group-commit speedup at 64 writers`.
//! In full mode each one-event configuration runs three times, alternated with its floor, and
//! shows the repetition with the median ratio.
//!
//! ```text
//! cargo bench -p es-postgres --bench throughput               # DATABASE_URL, or a throwaway server
//! cargo bench -p es-postgres --bench throughput -- --quick    # under a minute
//! ```

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/postgres/support.rs"]
mod support;

#[path = "support/ledger.rs"]
mod ledger;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::testing::Instrumented;
use es_core::{EventStore, NewEvent};
use es_postgres::{GroupCommit, PostgresStore};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "BenchDeposited")]
struct Deposited {
    amount: u64,
}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Deposit {
    amount: u64,
    /// Events the command emits.
    events: u32,
}

#[derive(Debug)]
struct Never;

#[derive(Aggregate, Default)]
#[aggregate(name = "bench_account", error = Never)]
struct Account {
    balance: u64,
}

#[aggregate_impl]
impl Account {
    #[command]
    fn deposit(&self, cmd: Deposit) -> Result<Vec<Deposited>, Never> {
        Ok((0..cmd.events)
            .map(|_| Deposited { amount: cmd.amount })
            .collect())
    }

    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

/// What one configuration measured.
struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    conflicts: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How many times each configuration of the first table runs beside its floor (full mode).
const REPEATS: usize = 3;

/// How many commands go to one aggregate before a writer moves to a new one (the peers'
/// harness does the same), so loads stay short.
const PER_AGGREGATE: usize = 10;

/// `writers` tasks run `commands` commands in all, each emitting `events` events. With
/// `hot` streams, writer `w` always works on stream `w % hot` (they grow, and writers
/// collide); without, each writer moves to an aggregate of its own every
/// [`PER_AGGREGATE`] commands. With `create`, the first command on each aggregate expects
/// no stream (`execute_expecting` with `NoStream`, as a command that creates an aggregate
/// would), so it needs no load. Commands per second and latencies.
async fn commands(
    store: &PostgresStore,
    writers: usize,
    hot: Option<usize>,
    commands: usize,
    events: u32,
    (cache, create): (bool, bool),
) -> Run {
    let counted = Instrumented::new(store.clone());
    let mut repo = Repository::<Account, _>::new(counted.clone()).with_retry(100);
    if cache {
        repo = repo.with_cache(writers.max(hot.unwrap_or(0)) * 2);
    }
    let shared: Vec<uuid::Uuid> = (0..hot.unwrap_or(0))
        .map(|_| uuid::Uuid::now_v7())
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (repo, next) = (repo.clone(), Arc::clone(&next));
            let shared = (!shared.is_empty()).then(|| shared[w % shared.len()]);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut id = shared.unwrap_or_else(uuid::Uuid::now_v7);
                let mut done = 0;
                while next.fetch_add(1, Ordering::Relaxed) < commands {
                    if shared.is_none() && done > 0 && done % PER_AGGREGATE == 0 {
                        id = uuid::Uuid::now_v7();
                    }
                    let t = Instant::now();
                    let command = Deposit { amount: 1, events };
                    if create && shared.is_none() && done % PER_AGGREGATE == 0 {
                        repo.execute_expecting(&id, command, ExpectedVersion::NoStream)
                            .await
                    } else {
                        repo.execute(&id, command).await
                    }
                    .expect("command");
                    latencies.push(t.elapsed());
                    done += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(commands);
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Run {
        per_second: commands as f64 / seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        conflicts: counted.conflicts(),
    }
}

/// Appends straight to the store: `writers` tasks, each on a stream of its own with the
/// exact version it knows (no load, no conflict), `appends` one-event appends in all.
/// Events per second and latencies.
async fn appends(store: &PostgresStore, writers: usize, appends: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (store, next) = (store.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let stream = StreamId::new("bench_append", uuid::Uuid::now_v7().to_string());
                let mut latencies = Vec::new();
                let mut version = 0;
                while next.fetch_add(1, Ordering::Relaxed) < appends {
                    let event = NewEvent {
                        event_id: uuid::Uuid::now_v7(),
                        event_type: "BenchDeposited".into(),
                        schema_version: 1,
                        payload: serde_json::json!({ "amount": version }),
                        metadata: Metadata::default(),
                    };
                    let t = Instant::now();
                    version = store
                        .append(&stream, ExpectedVersion::Exact(version), vec![event])
                        .await
                        .expect("append")
                        .version;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(appends);
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Run {
        per_second: appends as f64 / seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        conflicts: 0,
    }
}

/// The floor: `writers` tasks, each on a connection of its own, insert `rows` rows in all,
/// `per` rows per transaction (one prepared statement), into a table of the event's width.
/// Rows per second.
async fn floor(store: &PostgresStore, writers: usize, rows: usize, per: usize) -> f64 {
    let table = format!("\"{}\".bench_floor", store.schema());
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, stream text NOT NULL, \
         version bigint NOT NULL, payload jsonb NOT NULL)"
    )))
    .execute(store.pool())
    .await
    .expect("floor table");
    let sql = format!(
        "INSERT INTO {table} (stream, version, payload) \
         SELECT $1, v, jsonb_build_object('amount', v) FROM generate_series(1, $2::bigint) v"
    );
    let transactions = rows / per;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (pool, next, sql) = (store.pool().clone(), Arc::clone(&next), sql.clone());
            tokio::spawn(async move {
                // One connection for the whole run: one round trip per transaction, none
                // for the pool's tests of a connection leaving it and coming back.
                let mut conn = pool.acquire().await.expect("floor connection");
                while next.fetch_add(1, Ordering::Relaxed) < transactions {
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(w.to_string())
                        .bind(i64::try_from(per).unwrap_or(1))
                        .execute(&mut *conn)
                        .await
                        .expect("floor insert");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    (transactions * per) as f64 / start.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let store = support::store_with(72).await;
    // Warm the pool and the statement caches.
    let _ = commands(&store, 16, None, 320, 1, (false, false)).await;
    let _ = floor(&store, 16, 320, 1).await;

    let grouped = store.clone().with_group_commit(GroupCommit::new());
    println!(
        "one-event commands through the Repository on PostgreSQL, beside one-row INSERT transactions\n"
    );
    println!(
        "| writers | streams | first command | cache | group commit | commands/s | p50 (ms) | p99 (ms) | conflicts | floor (rows/s) | commands / floor |"
    );
    println!("|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    for (writers, hot, cache, group, create) in [
        (1, None, false, false, false),
        (4, None, false, false, false),
        (16, None, false, false, false),
        (64, None, false, false, false),
        (64, Some(8), false, false, false),
        (1, None, true, false, false),
        (16, None, true, false, false),
        (64, None, true, false, false),
        (64, Some(8), true, false, false),
        (1, None, true, true, false),
        (16, None, false, true, false),
        (16, None, true, true, false),
        (64, None, false, true, false),
        (64, None, true, true, false),
        (64, Some(8), true, true, false),
        (1, None, false, false, true),
        (1, None, true, false, true),
        (1, None, true, true, true),
    ] {
        let n = (400 * scale).max(writers * 10);
        let on = if group { &grouped } else { &store };
        // The run and the floor alternated, `REPEATS` times in full mode: the row is the
        // repetition with the median ratio (the machine is shared; one pair can be off).
        let mut pairs = Vec::new();
        for _ in 0..if quick { 1 } else { REPEATS } {
            let run = commands(on, writers, hot, n, 1, (cache, create)).await;
            let floor = floor(&store, writers, n, 1).await;
            pairs.push((run, floor));
        }
        pairs.sort_by(|a, b| (a.0.per_second / a.1).total_cmp(&(b.0.per_second / b.1)));
        let (run, floor) = pairs.swap_remove(pairs.len() / 2);
        let streams = hot.map_or_else(
            || format!("own, {PER_AGGREGATE} commands each"),
            |h| format!("{h} shared"),
        );
        let yes = |b: bool| if b { "yes" } else { "no" };
        println!(
            "| {writers} | {streams} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {floor:.0} | {:.2} |",
            if create {
                "expects `NoStream`"
            } else {
                "`execute`"
            },
            yes(cache),
            yes(group),
            run.per_second,
            ms(run.p50),
            ms(run.p99),
            run.conflicts,
            run.per_second / floor
        );
    }

    println!("\nten-event commands, beside 100-row INSERT transactions (events/s)\n");
    println!(
        "| writers | commands/s | events/s | p50 (ms) | p99 (ms) | floor, 100 rows per tx (rows/s) | events / floor |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for writers in [1, 16] {
        let n = (100 * scale).max(writers * 5);
        let run = commands(&store, writers, None, n, 10, (false, false)).await;
        let floor = floor(&store, writers, n * 100, 100).await;
        let events = run.per_second * 10.0;
        println!(
            "| {writers} | {:.0} | {events:.0} | {:.2} | {:.2} | {floor:.0} | {:.2} |",
            run.per_second,
            ms(run.p50),
            ms(run.p99),
            events / floor
        );
    }

    println!(
        "\nloading a 10,000-event aggregate, beside a raw SELECT of its rows with each payload \
         deserialized into the event (best of 3 each)\n"
    );
    println!("| events | raw SELECT + deserialize (ms) | load (ms) | load / raw |");
    println!("|---:|---:|---:|---:|");
    let id = ledger::ledger_of(&store, 10_000).await;
    let mut raw = f64::MAX;
    for _ in 0..3 {
        let (rows, seconds) = ledger::raw_select(&store, id, true).await;
        assert_eq!(rows, 10_000);
        raw = raw.min(seconds);
    }
    let ledgers = Repository::<ledger::Ledger, _>::new(store.clone());
    let (loaded, _) = ledger::load(&ledgers, id).await;
    println!(
        "| 10000 | {:.2} | {:.2} | {:.2} |",
        raw * 1e3,
        loaded * 1e3,
        loaded / raw
    );

    println!(
        "\none-event appends straight to the store (each writer its own stream, exact versions): \
         one transaction per append, and group commit, beside one-row INSERT transactions (events/s)\n"
    );
    println!(
        "| writers | one tx per append | p99 (ms) | group commit | p99 (ms) | group / one | floor (rows/s) | one / floor | group / floor |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut speedup = 0.0;
    let mut series: Vec<Point> = Vec::new();
    for writers in [1, 4, 16, 64] {
        let n = (1_000 * scale).max(writers * 20);
        let one = appends(&store, writers, n).await;
        let group = appends(&grouped, writers, n).await;
        let floor = floor(&store, writers, n, 1).await;
        let ratio = group.per_second / one.per_second;
        println!(
            "| {writers} | {:.0} | {:.2} | {:.0} | {:.2} | {ratio:.2} | {floor:.0} | {:.2} | {:.2} |",
            one.per_second,
            ms(one.p99),
            group.per_second,
            ms(group.p99),
            one.per_second / floor,
            group.per_second / floor,
        );
        if writers == 64 {
            speedup = ratio;
        }
        series.push((writers as f64, one.per_second, group.per_second, floor));
    }
    if let Some(path) = svg_path() {
        chart(&path, &series).expect("draw the chart");
        println!("\nchart: {path}");
    }
    println!("\ngroup-commit speedup at 64 writers: {speedup:.2}");
}

/// One point of the chart: writers, and events/s with one transaction per append, with
/// group commit, and the floor's rows/s.
type Point = (f64, f64, f64, f64);

/// A line of the chart: its label, its colour, and its value at a point.
type Line = (&'static str, plotters::style::RGBColor, fn(&Point) -> f64);

/// `--svg PATH`: where to draw the chart of the appends table.
fn svg_path() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--svg")
        .and_then(|i| args.get(i + 1).cloned())
}

/// Events/s against writers (1, 4, 16, 64, evenly spaced): one transaction per append,
/// group commit, and the one-row INSERT floor.
fn chart(path: &str, series: &[Point]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let top = series
        .iter()
        .map(|&(_, one, group, floor)| one.max(group).max(floor))
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "One-event appends on PostgreSQL: events/s by concurrent writers",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.25..(series.len() as f64 - 0.75), 0.0..top)?;
    let writers: Vec<f64> = series.iter().map(|p| p.0).collect();
    chart
        .configure_mesh()
        .x_desc("writers")
        .y_desc("events/s")
        .x_labels(series.len() + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            match writers.get(i as usize) {
                Some(w) if (x - i).abs() < 0.01 && i >= 0.0 => format!("{w:.0}"),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let lines: [Line; 3] = [
        ("group commit", RGBColor(31, 119, 180), |p| p.2),
        ("one transaction per append", RGBColor(214, 39, 40), |p| p.1),
        (
            "floor: one-row INSERT per transaction",
            RGBColor(120, 120, 120),
            |p| p.3,
        ),
    ];
    for (label, color, value) in lines {
        let points: Vec<(f64, f64)> = (0..)
            .zip(series)
            .map(|(i, p)| (f64::from(i), value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
