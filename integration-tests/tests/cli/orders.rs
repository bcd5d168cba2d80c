//! `microcosm order`: place, get, list, cancel and watch over a seeded stack.

use microcosm_testkit::Stack;
use serde_json::Value;

use crate::support::Microcosm;

async fn seeded_stack() -> Stack {
    Stack::with_demo_data().await.expect("stack")
}

/// The value of a `label  value` line of an order's text output.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(label)?;
            value.starts_with("  ").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

fn string<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placed_orders_end_confirmed_or_cancelled_and_get_and_list_show_them() {
    let stack = seeded_stack().await;
    let cli = Microcosm::for_stack(&stack);

    let alice = cli
        .json(&[
            "--json",
            "order",
            "place",
            "--customer",
            "alice",
            "--item",
            "KB-01:1",
            "--wait",
        ])
        .await;
    assert_eq!(alice["created"], true);
    assert_eq!(alice["idempotency_key_generated"], true);
    let alice = &alice["order"];
    assert_eq!(alice["status"], "CONFIRMED", "{alice:#}");
    assert_eq!(alice["reason"], Value::Null);
    assert_eq!(alice["total_minor"], 8900);
    assert_eq!(alice["lines"][0]["unit_price_minor"], 8900);
    let alice_id = string(&alice["order_id"], "order_id");

    let carol = cli
        .json(&[
            "--json",
            "order",
            "place",
            "--customer",
            "carol",
            "--item",
            "MON-27:1",
            "--wait",
        ])
        .await;
    let carol = &carol["order"];
    assert_eq!(
        (&carol["status"], &carol["reason"]),
        (
            &Value::from("CANCELLED"),
            &Value::from("insufficient_funds")
        ),
        "{carol:#}"
    );
    let carol_id = string(&carol["order_id"], "order_id");

    // `get` prints the order, its priced lines and every saga transition.
    let shown = cli.succeed(&["order", "get", alice_id]).await;
    assert_eq!(field(&shown, "status"), "CONFIRMED");
    assert_eq!(field(&shown, "saga"), "CONFIRMED");
    assert_eq!(field(&shown, "total"), "89.00");
    assert!(
        shown
            .lines()
            .any(|line| line.starts_with("KB-01") && line.ends_with("89.00")),
        "no priced KB-01 line in:\n{shown}"
    );
    for event in [
        "order_placed",
        "stock_reserved",
        "payment_captured",
        "stock_committed",
    ] {
        assert!(shown.contains(event), "no {event} in the history:\n{shown}");
    }
    let cancelled = cli.succeed(&["order", "get", carol_id]).await;
    assert_eq!(
        field(&cancelled, "status"),
        "CANCELLED (insufficient_funds)"
    );

    let detailed = cli
        .json(&["--json", "order", "get", alice_id, "--details"])
        .await;
    let history = detailed["order"]["history"].as_array().expect("history");
    assert_eq!(
        history.first().map(|first| &first["event"]),
        Some(&Value::from("order_placed"))
    );
    assert!(
        history.iter().all(|step| step["at"].is_string()),
        "{history:?}"
    );
    assert_eq!(detailed["details"]["account"]["customer_id"], "alice");
    assert_eq!(detailed["details"]["products"][0]["sku"], "KB-01");

    // `list` shows both, newest first, and pages with the token it prints.
    let listed = cli.succeed(&["order", "list"]).await;
    let position = |id: &str| {
        listed
            .find(id)
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"))
    };
    assert!(
        position(carol_id) < position(alice_id),
        "not newest first:\n{listed}"
    );
    let first_page = cli.json(&["--json", "order", "list", "--limit", "1"]).await;
    assert_eq!(first_page["orders"][0]["order_id"], carol_id);
    let token = string(&first_page["next_page_token"], "next_page_token");
    let second_page = cli
        .json(&[
            "--json",
            "order",
            "list",
            "--limit",
            "1",
            "--page-token",
            token,
        ])
        .await;
    assert_eq!(second_page["orders"][0]["order_id"], alice_id);
    let only_carol = cli
        .json(&["--json", "order", "list", "--customer", "carol"])
        .await;
    assert_eq!(only_carol["orders"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_order_cannot_be_cancelled_and_watch_replays_its_transitions() {
    let stack = seeded_stack().await;
    let cli = Microcosm::for_stack(&stack);

    let placed = cli
        .succeed(&[
            "order",
            "place",
            "--customer",
            "bob",
            "--item",
            "MOUSE-01:2",
            "--wait",
        ])
        .await;
    assert!(
        placed.contains("(generated"),
        "the generated key is not announced:\n{placed}"
    );
    assert_eq!(field(&placed, "status"), "CONFIRMED");
    assert_eq!(field(&placed, "total"), "58.00");
    let order_id = field(&placed, "order");

    // The printed key makes a retry safe: the same order comes back.
    let key = field(&placed, "key");
    let retried = cli
        .json(&[
            "--json",
            "order",
            "place",
            "--customer",
            "bob",
            "--item",
            "MOUSE-01:2",
            "--key",
            key,
        ])
        .await;
    assert_eq!(retried["created"], false);
    assert_eq!(retried["order"]["order_id"], order_id);

    let refused = cli.run(&["order", "cancel", order_id]).await.expect_exit(1);
    assert_eq!(
        refused.stderr.trim(),
        format!("error: order {order_id} is already CONFIRMED and can no longer be cancelled"),
        "not the server's plain message"
    );

    let transitions = cli.json(&["--json", "order", "get", order_id]).await["order"]["history"]
        .as_array()
        .map_or(0, Vec::len);
    let watched = cli.succeed(&["order", "watch", order_id]).await;
    let lines: Vec<&str> = watched.lines().collect();
    assert_eq!(
        lines.len(),
        transitions,
        "one line per transition:\n{watched}"
    );
    assert!(
        lines[0].contains("RESERVING")
            && lines[0].contains("PENDING")
            && lines[0].contains("order_placed"),
        "{watched}"
    );
    assert!(lines[lines.len() - 1].contains("CONFIRMED"), "{watched}");

    let watched = cli.succeed(&["--json", "order", "watch", order_id]).await;
    let events: Vec<Value> = watched
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert_eq!(events.len(), transitions);
    assert!(events.iter().all(|event| event["order_id"] == order_id));
    assert_eq!(events[0]["event"], "order_placed");
    assert_eq!(events[events.len() - 1]["status"], "CONFIRMED");
}
