//! The bank's event contracts against the committed `contracts/` folder: the code and the
//! folder agree, and a changed shape, a dropped version or an unwritten one is reported
//! naming the event and the change. Regenerate with `cargo run -p bank -- contracts
//! examples/bank/contracts` only for a new (name, version): a stored one never changes.

use std::path::{Path, PathBuf};

use es_core::contracts::Problem;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts")
}

/// A copy of the committed folder to break.
fn copy_of_committed() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bank-contracts-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(committed()).expect("committed folder") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("a file"))).expect("copy");
    }
    dir
}

#[test]
fn the_code_reads_exactly_the_committed_contracts() {
    if let Err(check) = bank::contracts().check(&committed()) {
        panic!("{check}");
    }
    let contracts = bank::contracts();
    assert!(
        contracts.iter().all(|c| c.schema.is_some()),
        "every bank event has a schema"
    );
    assert_eq!(contracts.iter().count(), 12);
}

#[test]
fn a_changed_schema_fails_naming_the_event_and_the_change() {
    let dir = copy_of_committed();
    // As if the committed v1 said `amount` was a string: the code's v1 now differs.
    let path = dir.join("MoneyDeposited.v1.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let edited = text.replacen("\"integer\"", "\"string\"", 1);
    assert_ne!(text, edited);
    std::fs::write(&path, edited).expect("write");
    // And one the code no longer reads, and one it reads that is not written.
    std::fs::write(
        dir.join("MoneyDeposited.v0.json"),
        r#"{"name": "MoneyDeposited", "version": 0, "schema": {"type": "object"}}"#,
    )
    .expect("write");
    std::fs::remove_file(dir.join("AccountClosed.v1.json")).expect("remove");

    let check = bank::contracts().check(&dir).expect_err("three problems");
    let message = check.to_string();
    assert_eq!(check.problems.len(), 3, "{message}");
    assert!(
        check.problems.iter().any(|p| matches!(p,
            Problem::Changed { name, version: 1, changes, .. }
                if name == "MoneyDeposited"
                    && changes == &["/properties/amount/type: \"string\" -> \"integer\"".to_owned()]
        )),
        "{message}"
    );
    assert!(
        check.problems.iter().any(|p| matches!(p,
            Problem::NoLongerRead { name, version: 0, .. } if name == "MoneyDeposited")),
        "{message}"
    );
    assert!(
        check.problems.iter().any(|p| matches!(p,
            Problem::NotWritten { name, version: 1 } if name == "AccountClosed")),
        "{message}"
    );
    assert!(
        message.contains("event `MoneyDeposited` version 1 changed its schema")
            && message.contains("/properties/amount/type"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).expect("clean up");
}
