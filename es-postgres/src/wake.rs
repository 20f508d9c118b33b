//! Waking subscribers after an append commits, never inside it (a `NOTIFY` in the append's
//! transaction would serialize every commit on the notification queue's lock).
//!
//! An append bumps a local counter: subscriptions of this process wake at once, and one
//! background task sends `NOTIFY` for the other processes, coalescing every append that
//! landed while it was busy into one notification.

use std::sync::Once;

use sqlx::PgPool;
use tokio::sync::watch;

pub(crate) struct Wake {
    appends: watch::Sender<u64>,
    notifier: Once,
    pool: PgPool,
    channel: String,
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wake")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Wake {
    pub(crate) fn new(pool: PgPool, channel: String) -> Self {
        Self {
            appends: watch::Sender::new(0),
            notifier: Once::new(),
            pool,
            channel,
        }
    }

    /// The channel other processes `LISTEN` on.
    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// A receiver that changes after every committed append of this process.
    pub(crate) fn local(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// Call after an append committed.
    pub(crate) fn appended(&self) {
        // The notifier subscribes first, so it sees this very append.
        self.notifier.call_once(|| self.start_notifier());
        self.appends.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn start_notifier(&self) {
        // No runtime (an append cannot run without one, but be safe): other processes then
        // find the events by polling.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut appends = self.appends.subscribe();
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        // Ends when the store (which owns the sender) is dropped.
        runtime.spawn(async move {
            while appends.changed().await.is_ok() {
                appends.borrow_and_update();
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(&channel)
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(error = %e, "NOTIFY failed; subscribers will poll");
                }
            }
        });
    }
}
