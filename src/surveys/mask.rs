//! Masks for personal data in logs and reports: `z***@example.com`, `Z***`.
//!
//! Logs and `plan` output name recipients this way so that an operator can tell emails apart
//! without the run report becoming a list of people.

/// `zoe@example.com` becomes `z***@example.com`; text without an `@` is masked whole.
pub fn email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{domain}", name(local)),
        None => name(address),
    }
}

/// `Zoë Ångström` becomes `Z***`: the first character only.
pub fn name(text: &str) -> String {
    match text.trim().chars().next() {
        Some(first) => format!("{first}***"),
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_first_character_and_the_domain() {
        assert_eq!(email("zoe@example.com"), "z***@example.com");
        assert_eq!(email("not-an-address"), "n***");
        assert_eq!(email(""), "***");
        assert_eq!(name("Zoë Ångström-Núñez"), "Z***");
        assert_eq!(name("Ångström"), "Å***");
    }
}
