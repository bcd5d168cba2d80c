//! The gRPC API: decode the request into domain types, run the query, encode the
//! answer. Validation happens in the `parse_*` functions and nowhere else.

mod error;

use microcosm_messaging::envelope::new_envelope;
use microcosm_messaging::outbox::{self, Dispatcher, Outgoing};
use microcosm_platform::pagination::{decode_page_token, encode_page_token, page_size};
use microcosm_proto::inventory as pb;
use microcosm_proto::inventory::inventory_service_server::InventoryService;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::db::products;
use crate::domain::{Product, RestockQuantity, Sku};

pub use error::ApiError;

/// The `shop.inventory.v1.InventoryService` implementation.
#[derive(Debug, Clone)]
pub struct InventoryApi {
    pool: PgPool,
    dispatcher: Dispatcher,
}

impl InventoryApi {
    /// An API over the service's database, publishing its events with `dispatcher`.
    pub fn new(pool: PgPool, dispatcher: Dispatcher) -> Self {
        Self { pool, dispatcher }
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    #[tracing::instrument(name = "ListProducts", skip_all)]
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let request = request.into_inner();
        let limit = page_size(request.page_size).map_err(ApiError::from)?;
        let after = decode_page_token(&request.page_token).map_err(ApiError::from)?;
        // One extra row tells whether another page follows.
        let mut page = products::list_products(&self.pool, after.as_deref(), limit + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last()
                .map(|last| encode_page_token(&last.sku))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListProductsResponse {
            products: page.into_iter().map(encode_product).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetProduct", skip_all)]
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::GetProductResponse>, Status> {
        let sku = Sku::parse("sku", &request.into_inner().sku).map_err(ApiError::from)?;
        let product = products::get_product(&self.pool, &sku)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::UnknownSku(sku))?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(encode_product(product)),
        }))
    }

    #[tracing::instrument(name = "RestockProduct", skip_all)]
    async fn restock_product(
        &self,
        request: Request<pb::RestockProductRequest>,
    ) -> Result<Response<pb::RestockProductResponse>, Status> {
        let (sku, quantity) = parse_restock(request.into_inner())?;
        let (product, announced) = restock(&self.pool, sku, quantity).await?;
        self.dispatcher.dispatch_in_background(announced);
        tracing::info!(sku = %product.sku, added = quantity.units(), available = product.available, "restocked");
        Ok(Response::new(pb::RestockProductResponse {
            product: Some(encode_product(product)),
        }))
    }
}

/// Adds the stock and announces it (`inventory.evt.product_restocked`) through
/// the outbox, in one transaction; returns the event for dispatch.
async fn restock(
    pool: &PgPool,
    sku: Sku,
    quantity: RestockQuantity,
) -> Result<(Product, Vec<Outgoing>), ApiError> {
    let mut tx = pool.begin().await?;
    let product = products::restock_product(&mut *tx, &sku, quantity)
        .await?
        .ok_or(ApiError::UnknownSku(sku))?;
    let event = Body::ProductRestocked(msg::ProductRestocked {
        sku: product.sku.clone(),
        quantity_added: quantity.units(),
        available: product.available,
    });
    let announced = outbox::enqueue(
        &mut tx,
        vec![new_envelope(event, Uuid::now_v7(), None, "inventory")],
    )
    .await?;
    tx.commit().await?;
    Ok((product, announced))
}

fn parse_restock(request: pb::RestockProductRequest) -> Result<(Sku, RestockQuantity), ApiError> {
    let sku = Sku::parse("sku", &request.sku)?;
    let quantity = RestockQuantity::parse("quantity", request.quantity)?;
    Ok((sku, quantity))
}

fn encode_product(product: Product) -> pb::Product {
    pb::Product {
        sku: product.sku,
        name: product.name,
        unit_price_minor: product.unit_price_minor,
        available: product.available,
        reserved: product.reserved,
    }
}

#[cfg(test)]
mod properties {
    //! Arbitrary RestockProduct requests (and GetProduct's sku) are parsed within
    //! the rules or refused with INVALID_ARGUMENT naming the field.

    use microcosm_platform::ids::Sku;
    use proptest::prelude::*;
    use tonic::Code;

    use super::*;
    use crate::domain::MAX_RESTOCK;

    proptest! {
        #[test]
        fn any_restock_request_is_parsed_within_the_rules_or_refused_naming_a_field(
            sku in prop_oneof!["[A-Z0-9-]{1,10}", any::<String>()],
            quantity in prop_oneof![1..=MAX_RESTOCK, any::<i64>()],
        ) {
            match parse_restock(pb::RestockProductRequest { sku: sku.clone(), quantity }) {
                Ok((parsed, units)) => {
                    prop_assert_eq!(parsed.as_str(), sku.as_str());
                    prop_assert!((1..=MAX_RESTOCK).contains(&units.units()));
                }
                Err(error) => {
                    let status = Status::from(error);
                    prop_assert_eq!(status.code(), Code::InvalidArgument);
                    prop_assert!(status.message().contains("sku") || status.message().contains("quantity"));
                }
            }
            prop_assert_eq!(Sku::parse("sku", &sku).is_ok(), !sku.is_empty() && sku.len() <= 32
                && sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }
}
