//! The fault API itself: listing, validation, clearing.

use microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient;
use microcosm_proto::admin::{ClearFaultsRequest, ListFaultsRequest};
use microcosm_testkit::{ServiceKind, Stack};

use crate::support::{set_fault, try_set_fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_lists_its_flags_and_refuses_bad_settings_naming_the_field() {
    let stack = Stack::start().await.expect("stack");
    for kind in ServiceKind::all() {
        let mut client =
            FaultInjectionServiceClient::new(stack.service(kind).channel().await.expect("channel"));
        let listed = client
            .list_faults(ListFaultsRequest {})
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.service, kind.name());
        let names: Vec<_> = listed.flags.iter().map(|flag| flag.name.as_str()).collect();
        for expected in [
            "added_latency_ms",
            "unavailable",
            "drop_ack_percent",
            "crash_on_next_messages",
            "lose_next_replies",
        ] {
            assert!(names.contains(&expected), "{}: {names:?}", kind.name());
        }
        assert_eq!(
            names.contains(&"decline_rate_percent"),
            kind == ServiceKind::Billing
        );
        assert!(
            listed
                .flags
                .iter()
                .all(|flag| flag.value == 0 && !flag.description.is_empty())
        );
    }

    let unknown = try_set_fault(&stack, ServiceKind::Order, "make_it_fast", 1)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(unknown.message().contains("name"));
    let too_much = try_set_fault(&stack, ServiceKind::Billing, "decline_rate_percent", 101)
        .await
        .expect_err("101%");
    assert_eq!(too_much.code(), tonic::Code::InvalidArgument);
    assert!(too_much.message().contains("value"));
    let elsewhere = try_set_fault(&stack, ServiceKind::Inventory, "decline_rate_percent", 10)
        .await
        .expect_err("not billing");
    assert_eq!(elsewhere.code(), tonic::Code::FailedPrecondition);

    set_fault(&stack, ServiceKind::Inventory, "added_latency_ms", 5).await;
    let mut client =
        FaultInjectionServiceClient::new(stack.inventory.channel().await.expect("channel"));
    let cleared = client
        .clear_faults(ClearFaultsRequest {})
        .await
        .expect("clear")
        .into_inner();
    assert!(cleared.flags.iter().all(|flag| flag.value == 0));
}
