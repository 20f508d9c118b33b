//! The banking platform demo: a scripted scenario on the in-memory store.
//!
//! ```text
//! cargo run -p bank
//! ```
//!
//! It prints each command, the events it appended with their versions and positions, the
//! rejections with their reasons, two writers racing on one account and how the conflict
//! resolves, then exits 0.

use std::process::ExitCode;

use es_core::InMemoryStore;

#[tokio::main]
async fn main() -> ExitCode {
    println!("Bank demo on the in-memory store\n");
    let mut out = std::io::stdout().lock();
    match bank::scenario::run(InMemoryStore::new(), &mut out).await {
        Ok(summary) => {
            println!(
                "\nDone: {} commands accepted, {} rejected, {} conflict(s) resolved; Ada's stream has {} events.",
                summary.accepted, summary.rejected, summary.conflicts, summary.stream_events
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nThe scenario failed: {e}");
            ExitCode::FAILURE
        }
    }
}
