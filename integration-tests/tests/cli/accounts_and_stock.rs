//! `microcosm inventory` and `microcosm billing`: reading and changing stock and money.

use microcosm_testkit::Stack;
use serde_json::Value;

use crate::support::Microcosm;

/// The demo catalogue's keyboard in an `inventory list --json` document.
fn keyboard(listed: &Value) -> &Value {
    listed["products"]
        .as_array()
        .and_then(|products| products.iter().find(|product| product["sku"] == "KB-01"))
        .unwrap_or_else(|| panic!("no KB-01 in {listed:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_and_billing_commands_show_and_change_stock_and_balances() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let cli = Microcosm::for_stack(&stack);

    let catalogue = cli.succeed(&["inventory", "list"]).await;
    let keyboard_line = catalogue
        .lines()
        .find(|line| line.starts_with("KB-01 "))
        .unwrap_or_else(|| panic!("no KB-01 row in:\n{catalogue}"));
    assert!(
        keyboard_line.contains("Mechanical keyboard") && keyboard_line.contains("89.00"),
        "{keyboard_line}"
    );
    let listed = cli.json(&["--json", "inventory", "list"]).await;
    assert_eq!(
        listed["products"].as_array().map(Vec::len),
        Some(12),
        "the whole demo catalogue"
    );
    assert_eq!(keyboard(&listed)["available"], 100);

    let restocked = cli
        .json(&["--json", "inventory", "restock", "KB-01", "5"])
        .await;
    assert_eq!(restocked["product"]["available"], 105);
    assert_eq!(
        keyboard(&cli.json(&["--json", "inventory", "list"]).await)["available"],
        105
    );
    let unknown = cli
        .run(&["inventory", "restock", "NO-SUCH-SKU", "1"])
        .await
        .expect_exit(1);
    assert_eq!(
        unknown.stderr.trim(),
        "error: no product with sku NO-SUCH-SKU"
    );

    let account = cli.succeed(&["billing", "account", "alice"]).await;
    assert!(
        account.lines().any(|line| line == "balance   5000.00"),
        "{account}"
    );
    let deposited = cli
        .json(&["--json", "billing", "deposit", "alice", "1050"])
        .await;
    assert_eq!(deposited["deposited_minor"], 1050);
    assert_eq!(deposited["account"]["balance_minor"], 501_050);
    let deposited = cli.succeed(&["billing", "deposit", "carol", "1000"]).await;
    assert!(
        deposited.lines().any(|line| line == "balance   15.00"),
        "{deposited}"
    );
    let account = cli.json(&["--json", "billing", "account", "carol"]).await;
    assert_eq!(account["account"]["balance_minor"], 1500);

    let nobody = cli
        .run(&["billing", "account", "nobody"])
        .await
        .expect_exit(1);
    assert!(
        nobody.stderr.starts_with("error: ") && nobody.stderr.contains("nobody"),
        "{}",
        nobody.stderr
    );
    assert!(
        !nobody.stderr.contains("Status {"),
        "a debug dump instead of a message: {}",
        nobody.stderr
    );
}
