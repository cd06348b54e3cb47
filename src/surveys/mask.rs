//! The survey modules' name for touchpoint's one email masker,
//! [`crate::telemetry::mask_email`]: `zoe@example.com` becomes `z***@e***.com` in logs, run
//! reports, `plan` output and the answer pages alike. Nothing here masks differently; the
//! name only lets the planning code say `mask::email`.

pub use crate::telemetry::mask_email as email;

#[cfg(test)]
mod tests {
    #[test]
    fn the_survey_mask_is_the_telemetry_mask() {
        let address = "zoe.angstrom@example.com";
        assert_eq!(super::email(address), "z***@e***.com");
        assert_eq!(super::email(address), crate::telemetry::mask_email(address));
    }
}
