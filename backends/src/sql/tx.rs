//! Transactions: retried on deadlocks, their statements counted (for the fault tests' hooks).

use super::*;

/// How often a flush that lost a deadlock is tried again before the caller hears of it.
pub(super) const DEADLOCK_RETRIES: u32 = 5;

/// A transaction the database aborted to break a deadlock or a serialization conflict
/// (InnoDB's gap locks make two nodes' upserts collide now and then).
pub(super) fn is_deadlock(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DatabaseError(Kind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("Deadlock found") || m.contains("deadlock detected")
        }
        _ => false,
    }
}

/// Runs `body` in a write transaction, again (at once) when the database aborted it to break a
/// deadlock: a deadlock victim was rolled back whole.
pub(super) fn transaction_with_retries<C: SqlConnection, T>(
    conn: &mut C,
    mut body: impl FnMut(&mut C) -> Result<T, TxError>,
) -> Result<T, StoreError> {
    let d = C::DIALECT;
    let mut attempt = 0;
    loop {
        match conn.write_transaction(&mut body) {
            Ok(value) => return Ok(value),
            Err(TxError::Db(e)) if is_deadlock(&e) && attempt < DEADLOCK_RETRIES => {
                attempt += 1;
                tracing::debug!(
                    backend = d.kind(),
                    attempt,
                    "transaction deadlocked, retrying"
                );
            }
            Err(TxError::Db(e)) => return Err(db_error(d, e)),
            Err(TxError::Store(e)) => return Err(e),
        }
    }
}

/// A test hook run inside a flush transaction (for example: kill its connection from another
/// session).
#[doc(hidden)]
pub type Interrupt = Arc<dyn Fn() + Send + Sync>;

/// The writes of a transaction, counted so that a test can make any one of them fail, or
/// interrupt the transaction before any one of them or before its commit.
pub(super) struct Steps {
    fail_at: Option<usize>,
    interrupt: Option<(usize, Interrupt)>,
    done: usize,
}

impl Steps {
    /// `fail_at`: fail (rolling the transaction back) before write number `fail_at`, 0-based.
    /// `interrupt`: run the hook before write number `n`, or before the commit if there are
    /// `n` writes or fewer.
    pub(super) fn new(fail_at: Option<usize>, interrupt: Option<(usize, Interrupt)>) -> Self {
        Self {
            fail_at,
            interrupt,
            done: 0,
        }
    }

    pub(super) fn exec<C: SqlConnection>(
        &mut self,
        conn: &mut C,
        sql: &str,
        binds: Vec<Bind>,
    ) -> Result<(), TxError> {
        if self.fail_at == Some(self.done) {
            return Err(TxError::Store(unavailable(C::DIALECT, "injected failure")));
        }
        if self
            .interrupt
            .as_ref()
            .is_some_and(|(at, _)| *at == self.done)
            && let Some((_, hook)) = self.interrupt.take()
        {
            hook();
        }
        self.done += 1;
        conn.exec(sql, binds)?;
        Ok(())
    }

    /// The end of the transaction's body, just before its commit.
    pub(super) fn before_commit(&mut self) {
        if let Some((_, hook)) = self.interrupt.take() {
            hook();
        }
    }
}

/// Errors inside a transaction: a database error (rolls back) or our own early exit.
pub(super) enum TxError {
    Db(diesel::result::Error),
    Store(StoreError),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}
