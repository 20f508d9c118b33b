//! Running one statement behind a transaction-pooling proxy (PgBouncer `pool_mode =
//! transaction`). There a server connection belongs to a client only inside a transaction,
//! and sqlx sends a statement's parse and its execution in two exchanges, which the proxy may
//! route to two servers. So, when the store is told it sits behind one
//! ([`PostgresStore::with_transaction_pooling`](crate::PostgresStore::with_transaction_pooling)),
//! each statement it sends on a pool connection runs in a transaction of its own (which
//! pins one server for both exchanges), and no statement is kept prepared by name (the next
//! transaction may run on a server that never saw it). Without a proxy, neither: one round
//! trip per statement, prepared statements cached.

/// Runs `$body` (a statement awaited on the connection bound to `$c`) on `$conn`: inside a
/// transaction of its own when `$pinned`, committed when the statement succeeded.
macro_rules! pinned {
    ($pinned:expr, $conn:expr, |$c:ident| $body:expr) => {{
        let conn: &mut sqlx::PgConnection = &mut *$conn;
        if $pinned {
            match sqlx::Connection::begin(conn).await {
                Ok(mut tx) => {
                    let result = {
                        let $c: &mut sqlx::PgConnection = &mut *tx;
                        $body
                    };
                    match result {
                        Ok(value) => tx.commit().await.map(|()| value),
                        // Dropping the transaction rolls it back.
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            let $c: &mut sqlx::PgConnection = conn;
            $body
        }
    }};
}

pub(crate) use pinned;
