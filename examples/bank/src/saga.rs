//! The money-transfer saga: a reactor that drives each [`Transfer`] through its steps. Every
//! command it sends is `execute_caused_by` the event it reacts to, so a redelivery (after a
//! crash, or a restart from an older checkpoint) sends nothing twice: no double debit. A step
//! an account refuses becomes an event of the transfer, which the next handler reacts to.

use es_core::Error;
use es_core::prelude::*;

use crate::domain::account::{Account, AccountError, Deposit, Withdraw};
use crate::domain::transfer::{
    RecordCredit, RecordCreditRefused, RecordDebit, RecordDebitRefused, RecordRefund, Transfer,
    TransferCreditRefused, TransferDebited, TransferError, TransferId, TransferRequested,
};

/// What a step can fail with (a store failure: the runner retries the step).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// An account command failed for another reason than a refusal.
    #[error(transparent)]
    Account(#[from] Error<AccountError>),
    /// A transfer command failed.
    #[error(transparent)]
    Transfer(#[from] Error<TransferError>),
    /// The event's stream id is not a transfer id.
    #[error("not a transfer id: {0}")]
    BadId(String),
}

/// Drives transfers: debit the source, credit the destination, refund on a refused credit.
#[derive(Reactor)]
#[reactor(name = "transfer_saga")]
pub struct TransferSaga<S: EventStore> {
    /// The accounts it moves money between.
    pub accounts: Repository<Account, S>,
    /// The transfers it records the steps of.
    pub transfers: Repository<Transfer, S>,
}

impl<S: EventStore> TransferSaga<S> {
    /// The saga on `store`.
    pub fn new(store: &S) -> Self {
        Self {
            accounts: Repository::new(store.clone()).with_retry(8),
            transfers: Repository::new(store.clone()).with_retry(8),
        }
    }

    async fn transfer<E: Sync>(
        &self,
        e: &Envelope<E>,
    ) -> Result<(TransferId, Transfer), SagaError> {
        let id: TransferId = e
            .stream
            .id()
            .parse()
            .map_err(|_| SagaError::BadId(e.stream.id().to_owned()))?;
        Ok((id, self.transfers.load(&id).await?.state))
    }
}

#[reactor_impl]
impl<S: EventStore> TransferSaga<S> {
    #[on]
    async fn requested(&self, e: &Envelope<TransferRequested>) -> Result<(), SagaError> {
        let id: TransferId = e
            .stream
            .id()
            .parse()
            .map_err(|_| SagaError::BadId(e.stream.id().to_owned()))?;
        let debit = Withdraw {
            amount: e.event.amount,
        };
        match self
            .accounts
            .execute_caused_by(e, &e.event.from, debit)
            .await
        {
            Ok(_) => {
                self.transfers
                    .execute_caused_by(e, &id, RecordDebit)
                    .await?;
            }
            Err(Error::Rejected(reason)) => {
                let refused = RecordDebitRefused {
                    reason: reason.to_string(),
                };
                self.transfers.execute_caused_by(e, &id, refused).await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    #[on]
    async fn debited(&self, e: &Envelope<TransferDebited>) -> Result<(), SagaError> {
        let (id, transfer) = self.transfer(e).await?;
        let Some((_, to, amount)) = transfer.parties() else {
            return Ok(());
        };
        match self
            .accounts
            .execute_caused_by(e, &to, Deposit { amount })
            .await
        {
            Ok(_) => {
                self.transfers
                    .execute_caused_by(e, &id, RecordCredit)
                    .await?;
            }
            Err(Error::Rejected(reason)) => {
                let refused = RecordCreditRefused {
                    reason: reason.to_string(),
                };
                self.transfers.execute_caused_by(e, &id, refused).await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    #[on]
    async fn credit_refused(&self, e: &Envelope<TransferCreditRefused>) -> Result<(), SagaError> {
        let (id, transfer) = self.transfer(e).await?;
        let Some((from, _, amount)) = transfer.parties() else {
            return Ok(());
        };
        // The source took the money out moments ago: it takes it back (a closed source
        // would refuse, and the refund would wait in Failed for an operator).
        self.accounts
            .execute_caused_by(e, &from, Deposit { amount })
            .await?;
        self.transfers
            .execute_caused_by(e, &id, RecordRefund)
            .await?;
        Ok(())
    }
}
