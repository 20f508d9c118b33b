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
    assert_eq!(
        report,
        TransferReport {
            completed: 1,
            refunded: 1,
            debit_refused: 1,
            balances: [7_000, 3_000, 0],
            totals: (10_000, 10_000),
            redelivery: (report.redelivery.1, report.redelivery.1),
        }
    );
    assert!(report.redelivery.0 > 0);
    let printed = String::from_utf8(out).expect("UTF-8");
    assert!(
        printed.contains("TransferCreditRefused -> TransferRefunded"),
        "{printed}"
    );
    assert!(printed.contains("TransferDebitRefused"), "{printed}");
}
