//! Names, addresses and time zones for the generated book.
//!
//! Every name is built from neutral syllables and every address ends in `example.com`, so no
//! generated record can be mistaken for a real person or company. Names are pure functions of
//! the seed and the record's numbers: nothing here is stored, and a row renders the same way
//! every time.

use chrono_tz::Tz;

use crate::sandbox::hash::{Draws, hash};

const SYLLABLES: [&str; 32] = [
    "ka", "lo", "mi", "ren", "to", "sa", "vi", "dor", "el", "na", "ri", "zu", "po", "ta", "ve",
    "lin", "mor", "se", "bra", "tal", "ko", "ni", "ra", "sol", "da", "fen", "gi", "hal", "jo",
    "mar", "tev", "quil",
];

const COMPANY_SUFFIXES: [&str; 10] = [
    "Labs",
    "Systems",
    "Group",
    "Works",
    "Partners",
    "Logistics",
    "Health",
    "Analytics",
    "Foods",
    "Studio",
];

/// Zones of the book's customers and people, with how common each one is.
pub const ZONES: [(Tz, u32); 19] = [
    (Tz::America__New_York, 20),
    (Tz::America__Chicago, 8),
    (Tz::America__Denver, 3),
    (Tz::America__Los_Angeles, 10),
    (Tz::America__Toronto, 4),
    (Tz::America__Sao_Paulo, 5),
    (Tz::America__Mexico_City, 3),
    (Tz::Europe__London, 10),
    (Tz::Europe__Berlin, 8),
    (Tz::Europe__Paris, 5),
    (Tz::Europe__Madrid, 3),
    (Tz::Europe__Stockholm, 2),
    (Tz::Africa__Johannesburg, 2),
    (Tz::Asia__Dubai, 2),
    (Tz::Asia__Kolkata, 6),
    (Tz::Asia__Singapore, 3),
    (Tz::Asia__Tokyo, 4),
    (Tz::Australia__Sydney, 4),
    (Tz::Pacific__Auckland, 1),
];

/// Draws a zone index into [`ZONES`], weighted by how common each zone is.
pub fn draw_zone(draws: &mut Draws) -> u8 {
    let weights: Vec<u32> = ZONES.iter().map(|(_, weight)| *weight).collect();
    draws.weighted(&weights) as u8
}

/// The zone stored under an index, if the index names one.
pub fn zone(index: u8) -> Option<Tz> {
    ZONES.get(usize::from(index)).map(|(zone, _)| *zone)
}

fn word(draws: &mut Draws, syllables: u64) -> String {
    let mut text: String = (0..syllables).map(|_| *draws.pick(&SYLLABLES)).collect();
    if let Some(first) = text.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    text
}

/// A company name and the slug its addresses use, from the seed and the account's number.
pub fn company(seed: u64, account: u32) -> (String, String) {
    let mut draws = Draws::new(&[seed, 0xC0, u64::from(account)]);
    let syllables = draws.between(2, 4);
    let stem = word(&mut draws, syllables);
    let suffix = draws.pick(&COMPANY_SUFFIXES);
    let slug = stem.to_ascii_lowercase();
    (format!("{stem} {suffix}"), slug)
}

/// A person's first and last name, from the seed and a number naming them.
pub fn person(seed: u64, who: u64) -> (String, String) {
    let mut draws = Draws::new(&[seed, 0x9E, who]);
    let first_len = draws.between(2, 4);
    let first = word(&mut draws, first_len);
    let last_len = draws.between(2, 4);
    let last = word(&mut draws, last_len);
    (first, last)
}

/// The number that names contact `n` of an account in [`person`].
pub fn contact_person(account: u32, n: u8) -> u64 {
    hash(&[u64::from(account), u64::from(n)])
}

/// `first.last@domain`, lower case.
pub fn address(first: &str, last: &str, domain: &str) -> String {
    format!(
        "{}.{}@{domain}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_addresses_are_examples() {
        assert_eq!(company(1, 7), company(1, 7));
        let (first, last) = person(1, contact_person(7, 1));
        let email = address(&first, &last, "kalo.example.com");
        assert!(email.ends_with("@kalo.example.com"));
        assert!(
            email
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn every_zone_is_a_named_iana_zone() {
        for (zone, _) in ZONES {
            assert_eq!(zone.name().parse::<Tz>().ok(), Some(zone));
        }
    }
}
