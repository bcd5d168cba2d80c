//! Page sizes and opaque page tokens for list RPCs.
//!
//! Lists use keyset pagination: the token carries the sort key of the last row
//! of the previous page, so a page is one index range scan however deep the
//! client pages, and rows inserted meanwhile never shift a page. The token is
//! opaque to clients (base64 of a versioned cursor) so its format can change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::validation::FieldViolation;

/// Page size when the client sends 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;

const TOKEN_VERSION: &str = "v1:";

/// Parses the `page_size` field: 0 means [`DEFAULT_PAGE_SIZE`].
///
/// # Errors
/// If the size is negative or above [`MAX_PAGE_SIZE`].
pub fn page_size(value: i32) -> Result<u32, FieldViolation> {
    match u32::try_from(value) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(FieldViolation::new(
            "page_size",
            format!(
                "is {value}; must be between 0 (default {DEFAULT_PAGE_SIZE}) and {MAX_PAGE_SIZE}"
            ),
        )),
    }
}

/// Turns a cursor (the last row's sort key) into an opaque token.
pub fn encode_page_token(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_VERSION}{cursor}"))
}

/// Reads the `page_token` field: `None` for the first page, else the cursor.
///
/// # Errors
/// If the token was not made by [`encode_page_token`].
pub fn decode_page_token(token: &str) -> Result<Option<String>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        FieldViolation::new(
            "page_token",
            "is not a token from a previous page; send it back unchanged, or empty for the first page",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(TOKEN_VERSION)
        .filter(|cursor| !cursor.is_empty())
        .map(|cursor| Some(cursor.to_owned()))
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_its_cursor() {
        let token = encode_page_token("2026-11-23T10:00:00Z|abc");
        assert_eq!(
            decode_page_token(&token),
            Ok(Some("2026-11-23T10:00:00Z|abc".to_owned()))
        );
        assert_eq!(decode_page_token(""), Ok(None));
    }

    #[test]
    fn a_forged_token_is_rejected_naming_page_token() {
        assert_eq!(
            decode_page_token("not base64!").expect_err("bad").field,
            "page_token"
        );
        let unversioned = URL_SAFE_NO_PAD.encode("cursor");
        assert!(decode_page_token(&unversioned).is_err());
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(500), Ok(500));
        assert!(page_size(501).is_err());
        assert!(page_size(-1).is_err());
    }
}
