//! The gRPC API: parse the request into domain types ([`parse`], the only place
//! input is validated), act, encode the answer ([`encode`]). Placing and
//! cancelling go through the saga driver in the same transaction as the order.

mod details;
mod encode;
mod error;
mod parse;
mod watch;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use microcosm_platform::pagination::encode_page_token;
use microcosm_proto::order as pb;
use microcosm_proto::order::order_service_server::OrderService;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use microcosm_messaging::outbox::Dispatcher;
use microcosm_platform::telemetry::propagation::current_trace_id;

use crate::db::orders;
use crate::db::sagas::HistoryEntry;
use crate::domain::{NewOrder, Order, OrderId};
use crate::saga::driver::{Applied, Cause, SagaDriver};
use crate::saga::machine::{SagaEvent, SagaState};
use crate::saga::updates::OrderUpdates;

pub use details::Participants;
pub use error::ApiError;

use encode::encode_order;
use parse::{parse_list_orders, parse_place_order};

/// The `shop.order.v1.OrderService` implementation.
#[derive(Debug, Clone)]
pub struct OrderApi {
    pool: PgPool,
    driver: SagaDriver,
    dispatcher: Dispatcher,
    updates: OrderUpdates,
    participants: Participants,
    max_wait: Duration,
    /// Permits for PlaceOrder calls in flight (PLACE_ORDER_MAX_IN_FLIGHT).
    place_order_permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl OrderApi {
    /// An API over the service's database, its saga driver and dispatcher, the
    /// broadcast of saga moves, and the participants' APIs (for GetOrder with
    /// details).
    pub fn new(
        pool: PgPool,
        driver: SagaDriver,
        dispatcher: Dispatcher,
        updates: OrderUpdates,
        participants: Participants,
        max_wait: Duration,
        max_in_flight: usize,
    ) -> Self {
        Self {
            pool,
            driver,
            dispatcher,
            updates,
            participants,
            max_wait,
            place_order_permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// Stores the order and starts its saga in one transaction, whose messages
    /// are dispatched once it commits; or finds the order placed earlier with
    /// the same key. Returns the order with its history, and whether it was
    /// created. A new order is answered from what was written, not read back.
    async fn store_order(
        &self,
        order: &NewOrder,
    ) -> Result<(Order, Vec<HistoryEntry>, bool), ApiError> {
        let mut tx = self.pool.begin().await?;
        let Some(created_at) = orders::insert_order(&mut tx, order).await? else {
            tx.rollback().await?;
            let stored =
                orders::get_order_by_idempotency_key(&self.pool, order.idempotency_key.as_str())
                    .await?
                    .ok_or_else(|| ApiError::Vanished(order.idempotency_key.as_str().to_owned()))?;
            if !order.is_retry_of(&stored) {
                return Err(ApiError::IdempotencyKeyReused(
                    order.idempotency_key.clone(),
                ));
            }
            let (stored, history) = watch::read_order(&self.pool, stored.order_id).await?;
            return Ok((stored, history, false));
        };
        let (started_at, outgoing) = self.driver.start(&mut tx, order).await?;
        tx.commit().await?;
        self.dispatcher.dispatch_in_background(outgoing);
        let history = vec![HistoryEntry {
            from_state: None,
            to_state: SagaState::START.name().to_owned(),
            event: "order_placed".to_owned(),
            message_id: None,
            at: started_at,
        }];
        Ok((order.placed(created_at, current_trace_id()), history, true))
    }

    /// Asks the saga to cancel; FAILED_PRECONDITION once the order is confirmed.
    async fn request_cancel(&self, order_id: OrderId) -> Result<(), ApiError> {
        let mut tx = self.pool.begin().await?;
        let cause = Cause {
            name: "cancel_requested",
            message_id: None,
        };
        let step = self
            .driver
            .apply(&mut tx, order_id, &SagaEvent::CancelRequested, cause)
            .await?;
        let applied = step.applied;
        match applied {
            Applied::UnknownSaga => return Err(ApiError::UnknownOrder(order_id)),
            Applied::Ignored {
                state: SagaState::Confirmed,
                ..
            } => return Err(ApiError::AlreadyConfirmed(order_id)),
            Applied::Moved { .. } | Applied::Ignored { .. } => {}
        }
        tx.commit().await?;
        applied.record_metrics();
        if matches!(applied, Applied::Moved { .. }) {
            self.updates.moved(order_id.as_uuid());
        }
        self.dispatcher.dispatch_in_background(step.outgoing);
        Ok(())
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOrderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OrderService for OrderApi {
    #[tracing::instrument(name = "PlaceOrder", skip_all)]
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        // Held until the answer, waiting included: the limit bounds the work and the
        // watchers PlaceOrder can pile up, and a refusal writes nothing.
        let Ok(_permit) = Arc::clone(&self.place_order_permits).try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "PlaceOrder is at its limit of {} calls in flight; nothing was written, \
                 retry with backoff (the same idempotency_key is safe)",
                self.max_in_flight
            )));
        };
        let placed = parse_place_order(request.into_inner(), self.max_wait)?;
        // Listening before the order exists: no move of its saga can be missed.
        let moves = (!placed.wait.is_zero()).then(|| self.updates.subscribe());
        let (order, history, created) = self.store_order(&placed.order).await?;
        if created {
            tracing::info!(order_id = %order.order_id, customer_id = %order.customer_id, "order placed; saga started");
        }
        let (order, history) = match moves {
            Some(moves) => {
                watch::wait_until_final(&self.pool, moves, (order, history), placed.wait).await?
            }
            None => (order, history),
        };
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(encode_order(order, history)),
            created,
        }))
    }

    #[tracing::instrument(name = "GetOrder", skip_all)]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let request = request.into_inner();
        let order_id = OrderId::parse("order_id", &request.order_id).map_err(ApiError::from)?;
        let (order, history) = watch::read_order(&self.pool, order_id).await?;
        let details = match request.include_details {
            true => Some(self.participants.details(&order).await),
            false => None,
        };
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(encode_order(order, history)),
            details,
        }))
    }

    #[tracing::instrument(name = "ListOrders", skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let query = parse_list_orders(request.into_inner())?;
        // One extra row tells whether another page follows.
        let mut page = orders::list_orders(
            &self.pool,
            query.customer_id.as_ref(),
            query.before,
            query.limit + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let next_page_token = if page.len() > query.limit as usize {
            page.truncate(query.limit as usize);
            page.last()
                .map(|last| encode_page_token(&last.order_id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page
                .into_iter()
                .map(|order| encode_order(order, Vec::new()))
                .collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "CancelOrder", skip_all)]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let order_id =
            OrderId::parse("order_id", &request.into_inner().order_id).map_err(ApiError::from)?;
        self.request_cancel(order_id).await?;
        tracing::info!(%order_id, "cancel requested");
        let (order, history) = watch::read_order(&self.pool, order_id).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(encode_order(order, history)),
        }))
    }

    type WatchOrderStream = WatchStream;

    #[tracing::instrument(name = "WatchOrder", skip_all)]
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let order_id =
            OrderId::parse("order_id", &request.into_inner().order_id).map_err(ApiError::from)?;
        // Listening first, so that no move after the read below is missed; the
        // read fails fast (NOT_FOUND) rather than open a stream for nothing, and
        // is the stream's first update.
        let moves = self.updates.subscribe();
        let initial = watch::read_order(&self.pool, order_id).await?;
        let updates = watch::watch(self.pool.clone(), moves, initial);
        Ok(Response::new(Box::pin(ReceiverStream::new(updates))))
    }
}
