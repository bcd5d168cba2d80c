//! The inventory API over a real service and database.

use microcosm_proto::inventory::{GetProductRequest, ListProductsRequest, RestockProductRequest};
use microcosm_testkit::{ServiceKind, Stack};

use crate::clients::{assert_invalid, count_rows, inventory};

async fn seeded_stack() -> microcosm_testkit::Stack {
    Stack::with_demo_data().await.expect("stack")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_demo_catalogue_page_by_page_in_sku_order() {
    let stack = seeded_stack().await;
    let mut client = inventory(&stack).await;
    let mut skus = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_products(ListProductsRequest {
                page_size: 5,
                page_token: token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.products.len() <= 5);
        skus.extend(page.products.into_iter().map(|product| product.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected = count_rows(&stack, ServiceKind::Inventory, "products").await;
    assert_eq!(skus.len() as i64, expected, "every product exactly once");
    assert!(expected >= 10, "the demo catalogue has products");
    let mut sorted = skus.clone();
    sorted.sort();
    assert_eq!(skus, sorted, "pages come in sku order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restock_adds_to_available_stock() {
    let stack = seeded_stack().await;
    let mut client = inventory(&stack).await;
    let before = client
        .get_product(GetProductRequest {
            sku: "KB-01".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .product
        .expect("product");
    let after = client
        .restock_product(RestockProductRequest {
            sku: "KB-01".into(),
            quantity: 7,
        })
        .await
        .expect("restock")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(after.available, before.available + 7);
    let reread = client
        .get_product(GetProductRequest {
            sku: "KB-01".into(),
        })
        .await
        .expect("get");
    assert_eq!(
        reread.into_inner().product.expect("product").available,
        after.available
    );

    let unknown = client
        .restock_product(RestockProductRequest {
            sku: "NOPE".into(),
            quantity: 1,
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown sku").code(),
        tonic::Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_naming_the_field_and_changes_nothing() {
    let stack = seeded_stack().await;
    let mut client = inventory(&stack).await;
    let pool = stack
        .superuser_pool(ServiceKind::Inventory)
        .await
        .expect("pool");
    let stock = || async {
        sqlx::query_scalar::<_, i64>("SELECT sum(available)::bigint FROM products")
            .fetch_one(&pool)
            .await
            .expect("sum")
    };
    let before = stock().await;

    for quantity in [0, -3, 1_000_001] {
        let result = client
            .restock_product(RestockProductRequest {
                sku: "KB-01".into(),
                quantity,
            })
            .await;
        assert_invalid(result, "quantity");
    }
    for sku in ["", "has space", &"X".repeat(33)] {
        let result = client
            .restock_product(RestockProductRequest {
                sku: sku.into(),
                quantity: 1,
            })
            .await;
        assert_invalid(result, "sku");
        assert_invalid(
            client
                .get_product(GetProductRequest { sku: sku.into() })
                .await,
            "sku",
        );
    }
    assert_invalid(
        client
            .list_products(ListProductsRequest {
                page_size: 501,
                page_token: String::new(),
            })
            .await,
        "page_size",
    );
    assert_invalid(
        client
            .list_products(ListProductsRequest {
                page_size: -1,
                page_token: String::new(),
            })
            .await,
        "page_size",
    );
    assert_invalid(
        client
            .list_products(ListProductsRequest {
                page_size: 5,
                page_token: "forged".into(),
            })
            .await,
        "page_token",
    );

    assert_eq!(stock().await, before, "no stock changed");
}
