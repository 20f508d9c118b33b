//! Loads read only what a fold needs (`read_for_load`), paged as every read is.

use crate::support;

/// Pages cut by bytes (a 300 KB payload fills one) give a load the same records, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_read_in_pages_cut_by_bytes_is_complete() {
    let store = support::store().await.with_batch_bytes(64 * 1024);
    es_core::testing::conformance::read_for_load_gives_what_read_stream_gives(store).await;
}
