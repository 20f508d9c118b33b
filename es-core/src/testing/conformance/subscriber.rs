//! The suite's subscription helper: filters to the test's own streams and checks position
//! order on everything delivered.

use super::*;

/// A subscription, filtered to the test's own streams, that checks the position order of
/// everything it delivers.
pub(super) struct Subscriber {
    pub(super) inner: Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>,
    pub(super) mine: HashSet<StreamId>,
    /// The last position delivered (or the one subscribed after).
    pub(super) last: Option<Position>,
    /// Every position delivered, of any stream, in order.
    pub(super) seen: Vec<Position>,
    pub(super) what: String,
}

pub(super) fn subscribe<S: EventStore>(
    store: &S,
    after: Option<Position>,
    mine: &[&StreamId],
    what: &str,
) -> Subscriber {
    Subscriber {
        inner: Box::pin(store.subscribe(after)),
        mine: mine.iter().map(|&s| s.clone()).collect(),
        last: after,
        seen: Vec::new(),
        what: match after {
            Some(p) => format!("{what}: subscribe(after {p})"),
            None => format!("{what}: subscribe(from the start)"),
        },
    }
}

impl Subscriber {
    /// The next `n` records of the test's streams, within [`WAIT`].
    pub(super) async fn take(&mut self, n: usize) -> Vec<RecordedEvent> {
        let what = format!("{}: taking {n} event(s)", self.what);
        within(WAIT, &what, async {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let Some(item) = self.inner.next().await else {
                    panic!(
                        "{what}: the subscription ended after {} event(s); it must go on live",
                        out.len()
                    );
                };
                let record = item.unwrap_or_else(|e| panic!("{what}: failed with {e:?}"));
                if let Some(last) = self.last {
                    assert!(
                        record.position > last,
                        "{what}: positions must be strictly increasing and after the \
                         subscribed position: {} came after {last}: {record:?}",
                        record.position
                    );
                }
                self.last = Some(record.position);
                self.seen.push(record.position);
                if self.mine.contains(&record.stream) {
                    out.push(record);
                }
            }
            out
        })
        .await
    }
}
