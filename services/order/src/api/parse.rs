//! Requests into domain types: the only place the order API validates input.

use std::time::Duration;

use microcosm_platform::pagination::{decode_page_token, page_size};
use microcosm_proto::order as pb;

use super::ApiError;
use crate::domain::{
    CustomerId, IdempotencyKey, NewOrder, OrderId, OrderLine, OrderLines, Quantity, Sku,
};

/// A PlaceOrder request, parsed.
pub(super) struct PlaceOrder {
    pub(super) order: NewOrder,
    pub(super) wait: Duration,
}

pub(super) fn parse_place_order(
    request: pb::PlaceOrderRequest,
    max_wait: Duration,
) -> Result<PlaceOrder, ApiError> {
    let customer_id = CustomerId::parse("customer_id", &request.customer_id)?;
    let lines = request
        .lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            Ok(OrderLine {
                sku: Sku::parse(&format!("lines[{index}].sku"), &line.sku)?,
                quantity: Quantity::parse(&format!("lines[{index}].quantity"), line.quantity)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let lines = OrderLines::new(lines)?;
    let idempotency_key = IdempotencyKey::parse("idempotency_key", &request.idempotency_key)?;
    let wait = Duration::from_millis(u64::from(request.wait_ms));
    if wait > max_wait {
        return Err(microcosm_platform::validation::FieldViolation::new(
            "wait_ms",
            format!(
                "is {}; at most {} is allowed",
                request.wait_ms,
                max_wait.as_millis()
            ),
        )
        .into());
    }
    Ok(PlaceOrder {
        order: NewOrder {
            order_id: OrderId::generate(),
            customer_id,
            lines,
            idempotency_key,
        },
        wait,
    })
}

/// A ListOrders request, parsed.
pub(super) struct ListOrdersQuery {
    pub(super) customer_id: Option<CustomerId>,
    pub(super) before: Option<OrderId>,
    pub(super) limit: u32,
}

pub(super) fn parse_list_orders(
    request: pb::ListOrdersRequest,
) -> Result<ListOrdersQuery, ApiError> {
    let customer_id = match request.customer_id.as_str() {
        "" => None,
        id => Some(CustomerId::parse("customer_id", id)?),
    };
    let limit = page_size(request.page_size)?;
    let before = decode_page_token(&request.page_token)?
        .map(|cursor| OrderId::parse("page_token", &cursor))
        .transpose()?;
    Ok(ListOrdersQuery {
        customer_id,
        before,
        limit,
    })
}

#[cfg(test)]
mod properties {
    //! Arbitrary PlaceOrder and ListOrders requests are parsed into orders that
    //! meet every rule, or refused with INVALID_ARGUMENT naming a field.

    use proptest::prelude::*;
    use tonic::{Code, Status};

    use super::*;
    use crate::domain::{MAX_LINES, MAX_QUANTITY};

    const MAX_WAIT: Duration = Duration::from_secs(30);

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Za-z0-9_-]{0,40}", ".{0,40}", any::<String>()]
    }

    fn line() -> impl Strategy<Value = pb::OrderLineRequest> {
        (
            prop_oneof!["[A-Z0-9-]{1,8}", text()],
            prop_oneof![1..=MAX_QUANTITY, any::<i32>()],
        )
            .prop_map(|(sku, quantity)| pb::OrderLineRequest { sku, quantity })
    }

    fn refusal_names_one_of(error: ApiError, fields: &[&str]) -> bool {
        let status = Status::from(error);
        status.code() == Code::InvalidArgument
            && fields.iter().any(|field| status.message().contains(field))
    }

    proptest! {
        #[test]
        fn any_place_order_request_is_parsed_within_the_rules_or_refused_naming_a_field(
            customer_id in text(),
            lines in proptest::collection::vec(line(), 0..=MAX_LINES + 5),
            idempotency_key in text(),
            wait_ms in prop_oneof![0..=30_000_u32, any::<u32>()],
        ) {
            let request = pb::PlaceOrderRequest { customer_id, lines, idempotency_key, wait_ms };
            match parse_place_order(request.clone(), MAX_WAIT) {
                Ok(parsed) => {
                    let lines = parsed.order.lines.as_slice();
                    prop_assert!((1..=MAX_LINES).contains(&lines.len()));
                    prop_assert_eq!(lines.len(), request.lines.len());
                    for line in lines {
                        prop_assert!((1..=MAX_QUANTITY).contains(&line.quantity.units()));
                    }
                    let mut skus: Vec<_> = lines.iter().map(|line| line.sku.as_str()).collect();
                    skus.sort_unstable();
                    skus.dedup();
                    prop_assert_eq!(skus.len(), lines.len(), "a sku appears once");
                    prop_assert!(parsed.wait <= MAX_WAIT);
                }
                Err(error) => prop_assert!(refusal_names_one_of(
                    error,
                    &["customer_id", "lines", "idempotency_key", "wait_ms"]
                )),
            }
        }

        #[test]
        fn every_well_formed_place_order_request_is_accepted(
            customer_id in "[A-Za-z0-9_-]{1,64}",
            skus in proptest::collection::btree_set("[A-Z0-9_-]{1,32}", 1..=MAX_LINES),
            quantity in 1..=MAX_QUANTITY,
            idempotency_key in "[ -~]{1,128}",
            wait_ms in 0..=30_000_u32,
        ) {
            let lines = skus
                .into_iter()
                .map(|sku| pb::OrderLineRequest { sku, quantity })
                .collect();
            let request = pb::PlaceOrderRequest { customer_id, lines, idempotency_key, wait_ms };
            let parsed = parse_place_order(request.clone(), MAX_WAIT);
            prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", request, parsed.err());
        }

        #[test]
        fn any_list_orders_request_is_a_bounded_query_or_refused_naming_a_field(
            customer_id in text(),
            page_size in any::<i32>(),
            page_token in text(),
        ) {
            let request = pb::ListOrdersRequest { customer_id, page_size, page_token };
            match parse_list_orders(request) {
                Ok(query) => prop_assert!((1..=microcosm_platform::pagination::MAX_PAGE_SIZE).contains(&query.limit)),
                Err(error) => prop_assert!(refusal_names_one_of(
                    error,
                    &["customer_id", "page_size", "page_token"]
                )),
            }
        }

        #[test]
        fn any_order_id_is_a_uuid_or_refused_naming_the_field(value in text()) {
            match OrderId::parse("order_id", &value) {
                Ok(id) => prop_assert_eq!(uuid::Uuid::parse_str(&value).ok(), Some(id.as_uuid())),
                Err(violation) => prop_assert_eq!(violation.field, "order_id"),
            }
        }
    }
}
