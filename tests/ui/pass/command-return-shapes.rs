// A command may emit nothing, one event, an optional one, many, a tuple of these, or the
// generated enum itself.
use es_core::prelude::*;
use es_core::testing::Fixture;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Added {
    n: u32,
}

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Reset {}

#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct Noop;
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct AddOne;
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct MaybeAdd {
    add: bool,
}
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct AddMany {
    n: u32,
}
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct ResetThenAdd;
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct AsEnum;
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
struct AsEnums;

#[derive(Debug, PartialEq)]
struct Never;

#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(error = Never)]
struct Tally {
    total: u32,
}

#[aggregate_impl]
impl Tally {
    #[command]
    fn noop(&self, _: Noop) -> Result<(), Never> {
        Ok(())
    }

    #[command]
    fn add_one(&self, _: AddOne) -> Result<Added, Never> {
        Ok(Added { n: 1 })
    }

    #[command]
    fn maybe_add(&self, cmd: MaybeAdd) -> Result<Option<Added>, Never> {
        Ok(cmd.add.then_some(Added { n: 1 }))
    }

    #[command]
    fn add_many(&self, cmd: AddMany) -> Result<Vec<Added>, Never> {
        Ok((1..=cmd.n).map(|n| Added { n }).collect())
    }

    #[command]
    fn reset_then_add(&self, _: ResetThenAdd) -> Result<(Reset, Option<Added>, Vec<Added>, ()), Never> {
        Ok((Reset {}, Some(Added { n: 5 }), vec![Added { n: 6 }], ()))
    }

    #[command]
    fn as_enum(&self, _: AsEnum) -> Result<TallyEvent, Never> {
        Ok(TallyEvent::Reset(Reset {}))
    }

    #[command]
    fn as_enums(&self, _: AsEnums) -> Result<Vec<TallyEvent>, Never> {
        Ok(vec![Added { n: 2 }.into(), Reset {}.into()])
    }

    #[apply]
    fn added(&mut self, e: &Added) {
        self.total += e.n;
    }

    #[apply]
    fn reset(&mut self, _: &Reset) {
        self.total = 0;
    }
}

fn main() {
    let given = || [TallyEvent::from(Added { n: 10 })];
    Fixture::<Tally>::given(given()).when(Noop).expect_events([]).expect_state(|t| t.total == 10);
    Fixture::<Tally>::given(given()).when(AddOne).expect_events([Added { n: 1 }.into()]);
    Fixture::<Tally>::given(given()).when(MaybeAdd { add: false }).expect_events([]);
    Fixture::<Tally>::given(given()).when(MaybeAdd { add: true }).expect_events([Added { n: 1 }.into()]);
    Fixture::<Tally>::given(given())
        .when(AddMany { n: 3 })
        .expect_events([Added { n: 1 }.into(), Added { n: 2 }.into(), Added { n: 3 }.into()])
        .expect_state(|t| t.total == 16);
    Fixture::<Tally>::given(given())
        .when(ResetThenAdd)
        .expect_events([Reset {}.into(), Added { n: 5 }.into(), Added { n: 6 }.into()])
        .expect_state(|t| t.total == 11);
    Fixture::<Tally>::given(given()).when(AsEnum).expect_events([Reset {}.into()]);
    Fixture::<Tally>::given(given())
        .when(AsEnums)
        .expect_events([Added { n: 2 }.into(), Reset {}.into()]);
}
