//! The `shop.admin.v1.FaultInjectionService` API: reading and setting the flags.

use microcosm_proto::admin as pb;
use microcosm_proto::admin::fault_injection_service_server::FaultInjectionService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use super::{FaultFlag, Faults, store};
use crate::grpc::database_status;
use crate::validation::FieldViolation;

/// The fault-flag API of one service.
#[derive(Debug, Clone)]
pub struct FaultAdmin {
    pool: PgPool,
    faults: Faults,
}

impl FaultAdmin {
    /// The API over the service's database and its copy of the flags.
    pub fn new(pool: PgPool, faults: Faults) -> Self {
        Self { pool, faults }
    }

    fn flags(&self) -> Vec<pb::FaultFlag> {
        FaultFlag::ALL
            .into_iter()
            .filter(|flag| flag.applies_to(self.faults.service()))
            .map(|flag| self.encode(flag))
            .collect()
    }

    fn encode(&self, flag: FaultFlag) -> pb::FaultFlag {
        pb::FaultFlag {
            name: flag.name().to_owned(),
            value: self.faults.value(flag),
            description: flag.description().to_owned(),
        }
    }

    /// Stores the value and updates this process's copy at once (the other
    /// replicas follow on the notification).
    async fn set(&self, flag: FaultFlag, value: u32) -> Result<(), Status> {
        store::store_flag(&self.pool, flag, value)
            .await
            .map_err(|error| database_status(&error))?;
        self.faults.set_local(flag, value);
        tracing::warn!(flag = flag.name(), value, "fault flag set");
        Ok(())
    }
}

#[tonic::async_trait]
impl FaultInjectionService for FaultAdmin {
    async fn list_faults(
        &self,
        _: Request<pb::ListFaultsRequest>,
    ) -> Result<Response<pb::ListFaultsResponse>, Status> {
        self.faults
            .refresh(&self.pool)
            .await
            .map_err(|error| database_status(&error))?;
        Ok(Response::new(pb::ListFaultsResponse {
            service: self.faults.service().to_owned(),
            flags: self.flags(),
        }))
    }

    async fn set_fault(
        &self,
        request: Request<pb::SetFaultRequest>,
    ) -> Result<Response<pb::SetFaultResponse>, Status> {
        let request = request.into_inner();
        let known = FaultFlag::ALL.map(FaultFlag::name).join(", ");
        let flag = FaultFlag::from_name(&request.name).ok_or_else(|| {
            FieldViolation::new(
                "name",
                format!("{:?} is not a fault flag; use one of {known}", request.name),
            )
        })?;
        if !flag.applies_to(self.faults.service()) {
            return Err(Status::failed_precondition(format!(
                "the {} service has no {} flag",
                self.faults.service(),
                flag.name()
            )));
        }
        if request.value > flag.max_value() {
            return Err(FieldViolation::new(
                "value",
                format!(
                    "is {}; {} takes 0 to {}",
                    request.value,
                    flag.name(),
                    flag.max_value()
                ),
            )
            .into());
        }
        self.set(flag, request.value).await?;
        Ok(Response::new(pb::SetFaultResponse {
            flag: Some(self.encode(flag)),
        }))
    }

    async fn clear_faults(
        &self,
        _: Request<pb::ClearFaultsRequest>,
    ) -> Result<Response<pb::ClearFaultsResponse>, Status> {
        for flag in FaultFlag::ALL {
            if flag.applies_to(self.faults.service()) {
                self.set(flag, 0).await?;
            }
        }
        Ok(Response::new(pb::ClearFaultsResponse {
            flags: self.flags(),
        }))
    }
}
