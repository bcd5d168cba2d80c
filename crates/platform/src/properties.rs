//! Property tests of what every service's request validation and message decoding
//! is built from: arbitrary input is either accepted, meeting the rule, or refused
//! with INVALID_ARGUMENT naming the field — never a panic, never a silent fix-up.

use microcosm_proto::messaging::envelope::Body;
use microcosm_proto::messaging::{self as msg};
use proptest::prelude::*;
use uuid::Uuid;

use crate::ids::{CustomerId, MAX_CUSTOMER_ID_LEN, MAX_SKU_LEN, Sku};
use crate::pagination::{MAX_PAGE_SIZE, decode_page_token, encode_page_token, page_size};
use crate::validation::FieldViolation;
use microcosm_messaging::envelope::{decode, new_envelope};

/// Strings that hit the rules' edges: mostly identifier characters, sometimes
/// anything at all (including multi-byte characters), from empty to too long.
fn identifier_like() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9_-]{0,80}", ".{0,80}", any::<String>(),]
}

fn is_identifier(value: &str, max_len: usize) -> bool {
    !value.is_empty()
        && value.len() <= max_len
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn names_the_field(violation: &FieldViolation, field: &str) -> bool {
    let status: tonic::Status = violation.clone().into();
    violation.field == field
        && status.code() == tonic::Code::InvalidArgument
        && status.message().contains(field)
}

proptest! {
    #[test]
    fn identifiers_are_accepted_exactly_when_they_meet_the_rule(value in identifier_like()) {
        match CustomerId::parse("customer_id", &value) {
            Ok(id) => {
                prop_assert!(is_identifier(&value, MAX_CUSTOMER_ID_LEN));
                prop_assert_eq!(id.as_str(), value.as_str());
            }
            Err(violation) => {
                prop_assert!(!is_identifier(&value, MAX_CUSTOMER_ID_LEN));
                prop_assert!(names_the_field(&violation, "customer_id"));
            }
        }
        match Sku::parse("lines[3].sku", &value) {
            Ok(_) => prop_assert!(is_identifier(&value, MAX_SKU_LEN)),
            Err(violation) => {
                prop_assert!(!is_identifier(&value, MAX_SKU_LEN));
                prop_assert!(names_the_field(&violation, "lines[3].sku"));
            }
        }
    }

    #[test]
    fn any_page_size_is_a_size_within_bounds_or_refused(value in any::<i32>()) {
        match page_size(value) {
            Ok(size) => prop_assert!((1..=MAX_PAGE_SIZE).contains(&size)),
            Err(violation) => {
                prop_assert!(value < 0 || value > MAX_PAGE_SIZE as i32);
                prop_assert!(names_the_field(&violation, "page_size"));
            }
        }
    }

    #[test]
    fn page_tokens_round_trip_and_forged_ones_are_refused(cursor in ".{1,60}", forged in any::<String>()) {
        prop_assert_eq!(decode_page_token(&encode_page_token(&cursor)), Ok(Some(cursor)));
        match decode_page_token(&forged) {
            Ok(None) => prop_assert!(forged.is_empty()),
            Ok(Some(_)) => {}
            Err(violation) => prop_assert!(names_the_field(&violation, "page_token")),
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_are_refused_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever arrives on a subject, decoding returns; what it accepts has a
        // body to handle (the consumer dead-letters everything else).
        if let Ok(received) = decode(&bytes) {
            prop_assert!(!microcosm_messaging::envelope::subject_of(&received.body).is_empty());
        }
    }

    #[test]
    fn every_envelope_round_trips_through_its_encoding(order_id in any::<String>(), correlation in any::<u128>()) {
        use prost::Message as _;
        let body = Body::StockReleased(msg::StockReleased { order_id });
        let envelope = new_envelope(body, Uuid::from_u128(correlation), None, "test");
        let decoded = decode(&envelope.encode_to_vec()).expect("an envelope we encoded decodes");
        prop_assert_eq!(decoded.correlation_id, Uuid::from_u128(correlation));
        // The body is moved out of the envelope (decoded once, never copied).
        let mut rest = envelope;
        prop_assert_eq!(Some(decoded.body), rest.body.take());
        prop_assert_eq!(decoded.envelope, rest);
    }
}
