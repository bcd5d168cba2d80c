//! The billing API over a real service and database.

use microcosm_proto::billing::{DepositRequest, GetAccountRequest, OpenAccountRequest};
use microcosm_testkit::{ServiceKind, Stack};

use crate::clients::{assert_invalid, billing, count_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_deposit_and_read_an_account() {
    let stack = Stack::start().await.expect("stack");
    let mut client = billing(&stack).await;

    let opened = client
        .open_account(OpenAccountRequest {
            customer_id: "dave".into(),
        })
        .await
        .expect("open");
    assert_eq!(
        opened.into_inner().account.expect("account").balance_minor,
        0
    );
    let again = client
        .open_account(OpenAccountRequest {
            customer_id: "dave".into(),
        })
        .await;
    assert_eq!(
        again.expect_err("second open").code(),
        tonic::Code::AlreadyExists
    );

    let deposited = client
        .deposit(DepositRequest {
            customer_id: "dave".into(),
            amount_minor: 1_500,
        })
        .await
        .expect("deposit");
    assert_eq!(
        deposited
            .into_inner()
            .account
            .expect("account")
            .balance_minor,
        1_500
    );
    client
        .deposit(DepositRequest {
            customer_id: "dave".into(),
            amount_minor: 250,
        })
        .await
        .expect("deposit");

    let account = client
        .get_account(GetAccountRequest {
            customer_id: "dave".into(),
        })
        .await
        .expect("get");
    assert_eq!(
        account.into_inner().account.expect("account").balance_minor,
        1_750
    );
    assert_eq!(
        count_rows(&stack, ServiceKind::Billing, "ledger_entries").await,
        2,
        "one ledger entry per deposit"
    );

    let unknown = client
        .deposit(DepositRequest {
            customer_id: "nobody".into(),
            amount_minor: 1,
        })
        .await;
    assert_eq!(
        unknown.expect_err("no account").code(),
        tonic::Code::NotFound
    );
    let unknown = client
        .get_account(GetAccountRequest {
            customer_id: "nobody".into(),
        })
        .await;
    assert_eq!(
        unknown.expect_err("no account").code(),
        tonic::Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_customers_are_funded() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let mut client = billing(&stack).await;
    for customer in ["alice", "bob", "carol"] {
        let account = client
            .get_account(GetAccountRequest {
                customer_id: customer.into(),
            })
            .await
            .expect("get");
        assert!(
            account.into_inner().account.expect("account").balance_minor > 0,
            "{customer} has money"
        );
    }
    // The ledger explains every balance.
    let pool = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    let unexplained: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a
          WHERE a.balance_minor <> (SELECT coalesce(sum(CASE kind WHEN 'charge' THEN -amount_minor ELSE amount_minor END), 0)
                                      FROM ledger_entries l WHERE l.customer_id = a.customer_id)",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(unexplained, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_naming_the_field_and_changes_nothing() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let mut client = billing(&stack).await;
    let accounts_before = count_rows(&stack, ServiceKind::Billing, "accounts").await;
    let ledger_before = count_rows(&stack, ServiceKind::Billing, "ledger_entries").await;
    let balance = || async {
        let mut client = billing(&stack).await;
        let account = client
            .get_account(GetAccountRequest {
                customer_id: "alice".into(),
            })
            .await
            .expect("get");
        account.into_inner().account.expect("account").balance_minor
    };
    let alice_before = balance().await;

    for amount_minor in [0, -100, 100_000_001] {
        let result = client
            .deposit(DepositRequest {
                customer_id: "alice".into(),
                amount_minor,
            })
            .await;
        assert_invalid(result, "amount_minor");
    }
    for customer_id in ["", "white space", &"c".repeat(65)] {
        assert_invalid(
            client
                .open_account(OpenAccountRequest {
                    customer_id: customer_id.into(),
                })
                .await,
            "customer_id",
        );
        assert_invalid(
            client
                .deposit(DepositRequest {
                    customer_id: customer_id.into(),
                    amount_minor: 100,
                })
                .await,
            "customer_id",
        );
        assert_invalid(
            client
                .get_account(GetAccountRequest {
                    customer_id: customer_id.into(),
                })
                .await,
            "customer_id",
        );
    }

    assert_eq!(
        count_rows(&stack, ServiceKind::Billing, "accounts").await,
        accounts_before
    );
    assert_eq!(
        count_rows(&stack, ServiceKind::Billing, "ledger_entries").await,
        ledger_before
    );
    assert_eq!(balance().await, alice_before);
}
