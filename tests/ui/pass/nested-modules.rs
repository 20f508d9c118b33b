// Events, commands and the aggregate in different modules, named by path.
mod events {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Opened {
        pub owner: String,
    }

    pub mod money {
        use es_core::prelude::*;
        use serde::{Deserialize, Serialize};

        #[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
        pub struct Deposited {
            pub amount: u64,
        }
    }
}

mod commands {
    use es_core::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Command, Serialize, Deserialize, Clone, Debug)]
    pub struct Open {
        pub owner: String,
    }
}

pub mod domain {
    pub mod account {
        use es_core::prelude::*;

        use crate::{commands, events};

        #[derive(Debug)]
        pub struct Rejected;

        #[derive(Aggregate, Default)]
        #[aggregate(name = "account", error = Rejected)]
        pub struct Account {
            pub owner: Option<String>,
            pub balance: u64,
        }

        #[aggregate_impl]
        impl Account {
            #[command]
            fn open(&self, cmd: commands::Open) -> Result<events::Opened, Rejected> {
                Ok(events::Opened { owner: cmd.owner })
            }

            #[apply]
            fn opened(&mut self, e: &events::Opened) {
                self.owner = Some(e.owner.clone());
            }

            #[apply]
            fn deposited(&mut self, e: &crate::events::money::Deposited) {
                self.balance += e.amount;
            }
        }
    }
}

fn main() {
    use domain::account::{Account, AccountEvent};
    use es_core::Aggregate;
    let mut account = Account::default();
    let events = account
        .handle(commands::Open { owner: "ada".into() }.into())
        .expect("opens");
    for e in &events {
        account.apply(e);
    }
    account.apply(&AccountEvent::from(events::money::Deposited { amount: 7 }));
    assert_eq!(account.owner.as_deref(), Some("ada"));
    assert_eq!(account.balance, 7);
}
