//! Compile-time safety: every misuse under `ui/fail` is a compile error that points at the
//! user's token (the reviewed `.stderr` beside each case), and every case under `ui/pass`
//! compiles and runs. Regenerate with `TRYBUILD=overwrite cargo test -p es-tests --test ui`
//! and read the diff before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
