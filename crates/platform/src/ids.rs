//! The identifiers that cross service boundaries: they travel in saga messages
//! and appear in every API, so they must parse the same way everywhere (a shared
//! kernel, in domain-driven design's words). Everything else in a domain belongs
//! to the one service that owns it.

use std::fmt;

use crate::validation::{FieldViolation, identifier};

/// Longest customer id accepted anywhere in Microcosm.
pub const MAX_CUSTOMER_ID_LEN: usize = 64;
/// Longest sku accepted anywhere in Microcosm.
pub const MAX_SKU_LEN: usize = 32;

/// A customer id: 1-64 letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

/// A product code: 1-32 letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

macro_rules! text_identifier {
    ($name:ident, $max:expr) => {
        impl $name {
            /// Parses the request field `field`.
            ///
            /// # Errors
            /// If the value is empty, too long, or has other characters.
            pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
                identifier(field, value, $max).map(Self)
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_identifier!(CustomerId, MAX_CUSTOMER_ID_LEN);
text_identifier!(Sku, MAX_SKU_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_name_the_field_they_came_from() {
        assert_eq!(
            Sku::parse("lines[2].sku", "bad sku")
                .expect_err("space")
                .field,
            "lines[2].sku"
        );
        let long = "a".repeat(MAX_CUSTOMER_ID_LEN + 1);
        assert_eq!(
            CustomerId::parse("customer_id", &long)
                .expect_err("long")
                .field,
            "customer_id"
        );
        assert_eq!(
            CustomerId::parse("customer_id", "alice").map(|id| id.to_string()),
            Ok("alice".to_owned())
        );
    }
}
