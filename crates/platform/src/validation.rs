//! Field-level validation shared by every public API.
//!
//! Each service parses a protobuf request into its own domain types in one
//! function; that function reports the first bad field as a [`FieldViolation`],
//! which becomes `INVALID_ARGUMENT` naming the field. These helpers hold the
//! rules that are the same everywhere (identifiers, positive amounts), so the
//! services do not each re-implement them slightly differently.

use std::fmt;

/// One invalid field of a request, e.g. `lines[1].quantity: must be at least 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldViolation {
    /// The field's path in the request, as a client would write it.
    pub field: String,
    /// What is wrong with it, phrased so the caller knows what to send instead.
    pub problem: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.problem)
    }
}

impl From<FieldViolation> for tonic::Status {
    fn from(violation: FieldViolation) -> Self {
        tonic::Status::invalid_argument(violation.to_string())
    }
}

/// An identifier such as a customer id or a sku: 1 to `max_len` characters of
/// ASCII letters, digits, `-` and `_`.
///
/// # Errors
/// A [`FieldViolation`] of `field` if the value is empty, too long or has other characters.
pub fn identifier(field: &str, value: &str, max_len: usize) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if value.len() > max_len {
        return Err(FieldViolation::new(
            field,
            format!(
                "is {} characters long; at most {max_len} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(FieldViolation::new(
            field,
            format!("contains {bad:?}; use only letters, digits, '-' and '_'"),
        ));
    }
    Ok(value.to_owned())
}

/// A whole number in `1..=max`, such as a quantity or an amount of money.
///
/// # Errors
/// A [`FieldViolation`] of `field` if the value is zero, negative or above `max`.
pub fn positive(field: &str, value: i64, max: i64) -> Result<i64, FieldViolation> {
    if value <= 0 {
        return Err(FieldViolation::new(
            field,
            format!("is {value}; must be at least 1"),
        ));
    }
    if value > max {
        return Err(FieldViolation::new(
            field,
            format!("is {value}; must be at most {max}"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_letters_digits_dash_and_underscore() {
        assert_eq!(identifier("sku", "KB-01_a", 32), Ok("KB-01_a".to_owned()));
    }

    #[test]
    fn identifiers_reject_empty_long_and_odd_values_naming_the_field() {
        assert_eq!(identifier("sku", "", 32).expect_err("empty").field, "sku");
        let long = "x".repeat(33);
        assert!(
            identifier("sku", &long, 32)
                .expect_err("long")
                .problem
                .contains("at most 32")
        );
        assert!(
            identifier("customer_id", "a b", 64)
                .expect_err("space")
                .problem
                .contains("' '")
        );
    }

    #[test]
    fn positive_numbers_must_be_between_one_and_the_maximum() {
        assert_eq!(positive("quantity", 1, 10), Ok(1));
        assert!(positive("quantity", 0, 10).is_err());
        assert!(positive("quantity", -5, 10).is_err());
        assert!(positive("quantity", 11, 10).is_err());
    }

    #[test]
    fn a_violation_becomes_invalid_argument_naming_the_field() {
        let status = tonic::Status::from(FieldViolation::new(
            "lines[0].quantity",
            "must be at least 1",
        ));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("lines[0].quantity"));
    }
}
