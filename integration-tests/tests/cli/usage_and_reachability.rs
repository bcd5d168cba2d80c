//! What the CLI says before a request is refused: a malformed argument, or a
//! service that is not there. Neither needs a running stack.

use crate::support::Microcosm;

#[tokio::test]
async fn a_malformed_item_is_a_usage_error_naming_the_flag_and_the_form() {
    // Nothing listens: exit 2 rather than 3 proves the item was refused first.
    let cli = Microcosm::for_nothing_listening();
    for item in ["KB-01", "KB-01:x", "KB-01:0"] {
        let refused = cli
            .run(&["order", "place", "--customer", "alice", "--item", item])
            .await
            .expect_exit(2);
        assert!(
            refused.stderr.contains("--item") && refused.stderr.contains("SKU:QTY"),
            "{item}: {}",
            refused.stderr
        );
    }
}

#[tokio::test]
async fn an_unreachable_service_exits_3_naming_it_and_how_to_start_it() {
    let cli = Microcosm::for_nothing_listening();
    for (args, service, flag) in [
        (&["order", "list"][..], "order", "--order-url"),
        (&["inventory", "list"][..], "inventory", "--inventory-url"),
        (
            &["billing", "account", "alice"][..],
            "billing",
            "--billing-url",
        ),
    ] {
        let failed = cli.run(args).await.expect_exit(3);
        let expected = format!("cannot reach the {service} service at http://127.0.0.1:1");
        for needle in [expected.as_str(), "microcosm up", flag] {
            assert!(
                failed.stderr.contains(needle),
                "no {needle:?} in: {}",
                failed.stderr
            );
        }
    }
}
