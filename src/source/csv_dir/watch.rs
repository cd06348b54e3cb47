//! What a CSV file's rows say about the data beyond each row: ids that several rows carry and
//! values the contract does not list. The reader shows it every row it read; each finding
//! becomes one note for the run report, never one per row.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use crate::model::{ActivityType, Persona};

/// A column whose values the contract lists, and what touchpoint makes of any other value.
#[derive(Debug, Clone, Copy)]
enum Listed {
    Persona,
    ActivityType,
}

impl Listed {
    fn of(dataset: &str) -> Option<Listed> {
        match dataset {
            "contacts" => Some(Listed::Persona),
            "activities" => Some(Listed::ActivityType),
            _ => None,
        }
    }

    fn column(self) -> &'static str {
        match self {
            Listed::Persona => "persona",
            Listed::ActivityType => "type",
        }
    }

    fn lists(self, value: &str) -> bool {
        match self {
            Listed::Persona => Persona::from_listed(value).is_some(),
            Listed::ActivityType => ActivityType::from_listed(value).is_some(),
        }
    }

    fn values(self) -> String {
        let values: Vec<&str> = match self {
            Listed::Persona => Persona::LISTED.map(Persona::as_str).to_vec(),
            Listed::ActivityType => ActivityType::LISTED.map(ActivityType::as_str).to_vec(),
        };
        values.join(", ")
    }

    fn read_as(self) -> &'static str {
        match self {
            Listed::Persona => "are read as `other`",
            Listed::ActivityType => "count for nothing in scoring",
        }
    }
}

/// Distinct unlisted values named one by one in the notes; more are only counted.
const UNLISTED_NAMED: usize = 10;
/// Repeated ids named in the notes; more are only counted.
const REPEATS_NAMED: usize = 3;

/// What a file's rows say about the data beyond each row: ids that more than one row carries
/// (in `accounts.csv` and `contacts.csv`, where the newest row of an id is used) and values
/// the contract does not list. Each becomes one note, not one per row.
pub(super) struct Watch {
    listed: Option<Listed>,
    unlisted: BTreeMap<String, u64>,
    unlisted_more: u64,
    /// The first line of each id seen, keyed by a hash of the id so that a large book's ids
    /// are not held a second time while its records are.
    first_lines: Option<HashMap<u64, u64>>,
    hasher: RandomState,
    repeats: Vec<(String, u64, u64)>,
    repeated: u64,
}

impl Watch {
    pub(super) fn new(dataset: &str) -> Self {
        let tracks_ids = matches!(dataset, "accounts" | "contacts");
        Self {
            listed: Listed::of(dataset),
            unlisted: BTreeMap::new(),
            unlisted_more: 0,
            first_lines: tracks_ids.then(HashMap::new),
            hasher: RandomState::new(),
            repeats: Vec::new(),
            repeated: 0,
        }
    }

    /// Looks at one row that was read.
    pub(super) fn row(&mut self, columns: &[String], record: &csv::ByteRecord, line: u64) {
        let cell = |name: &str| {
            let index = columns.iter().position(|column| column == name)?;
            let text = std::str::from_utf8(record.get(index)?).ok()?.trim();
            (!text.is_empty()).then_some(text)
        };
        if let Some(listed) = self.listed
            && let Some(value) = cell(listed.column())
            && !listed.lists(value)
        {
            self.unlisted_value(value);
        }
        if let Some(id) = cell("id") {
            self.id(id, line);
        }
    }

    fn unlisted_value(&mut self, value: &str) {
        if let Some(count) = self.unlisted.get_mut(value) {
            *count += 1;
        } else if self.unlisted.len() < UNLISTED_NAMED {
            self.unlisted.insert(value.to_owned(), 1);
        } else {
            self.unlisted_more += 1;
        }
    }

    fn id(&mut self, id: &str, line: u64) {
        let Some(first_lines) = self.first_lines.as_mut() else {
            return;
        };
        let first = *first_lines.entry(self.hasher.hash_one(id)).or_insert(line);
        if first == line {
            return;
        }
        self.repeated += 1;
        if self.repeats.len() < REPEATS_NAMED {
            self.repeats.push((id.to_owned(), first, line));
        }
    }

    pub(super) fn notes(&self, file: &str) -> Vec<String> {
        let mut notes = Vec::new();
        if self.repeated > 0 {
            let mut named: Vec<String> = self
                .repeats
                .iter()
                .map(|(id, first, line)| format!("{id} on lines {first} and {line}"))
                .collect();
            if self.repeated > self.repeats.len() as u64 {
                named.push("...".to_owned());
            }
            notes.push(format!(
                "{file}: {} row(s) repeat the id of an earlier row ({}); for each id, the row \
                 with the newest updated_at is used",
                self.repeated,
                named.join(", ")
            ));
        }
        let Some(listed) = self.listed else {
            return notes;
        };
        for (value, rows) in &self.unlisted {
            notes.push(format!(
                "{file}: {} {value:?} is not a value the contract lists ({}); its {rows} \
                 row(s) {}",
                listed.column(),
                listed.values(),
                listed.read_as()
            ));
        }
        if self.unlisted_more > 0 {
            notes.push(format!(
                "{file}: {} more row(s) carry other {} values the contract does not list",
                self.unlisted_more,
                listed.column()
            ));
        }
        notes
    }
}
