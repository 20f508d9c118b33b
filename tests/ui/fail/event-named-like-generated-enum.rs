use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
struct CalendarEvent {
    title: String,
}

#[derive(Debug)]
struct CalendarError;

#[derive(Aggregate, Default)]
#[aggregate(error = CalendarError)]
struct Calendar {
    titles: Vec<String>,
}

#[aggregate_impl]
impl Calendar {
    #[apply]
    fn added(&mut self, e: &CalendarEvent) {
        self.titles.push(e.title.clone());
    }
}

fn main() {}
