//! The transfer saga on the in-memory store: a success, a refused credit refunded, a refused
//! debit; money conserved; restarted from an older checkpoint, it moves nothing twice.

use bank::transfers::{self, TransferReport};
use es_core::InMemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_complete_refund_or_fail_and_conserve_money() {
    let mut out = Vec::new();
    let report = transfers::run(InMemoryStore::new(), &mut out)
        .await
        .expect("the transfer demo succeeds");
    let TransferReport {
        completed,
        refunded,
        debit_refused,
        balances,
        totals,
        redelivery,
        ..
    } = report;
    assert_eq!((completed, refunded, debit_refused), (1, 1, 1));
    assert_eq!(balances, [7_000, 3_000, 0]);
    assert_eq!(totals, (10_000, 10_000));
    assert_eq!(redelivery.0, redelivery.1, "the redelivery moved nothing");
    assert!(redelivery.0 > 0);
    let printed = String::from_utf8(out).expect("UTF-8");
    assert!(
        printed.contains("TransferCreditRefused -> TransferRefunded"),
        "{printed}"
    );
    assert!(printed.contains("TransferDebitRefused"), "{printed}");
}
