//! The bench's catalogue, customers and orders, shared by the saga and the
//! monolith so that both do exactly the same business work.
//!
//! Stock and money are so plentiful that every order can be confirmed: the bench
//! measures the happy path at full speed, not how the saga compensates (the
//! integration tests prove that). Orders come from a small deterministic
//! generator, so two runs place the same orders and a surprising number can be
//! replayed.

/// Products in the bench catalogue: few enough that orders contend for rows, as
/// they would for best sellers, many enough that they do not all queue on one.
pub(crate) const PRODUCTS: usize = 20;
/// Customers with a funded account.
pub(crate) const CUSTOMERS: usize = 100;
/// Units of each product: no bench run can sell out.
pub(crate) const STOCK_EACH: i64 = 1_000_000_000;
/// Minor units on each account: no bench run can exhaust it.
pub(crate) const FUNDS_EACH: i64 = 1_000_000_000_000_000;
/// Longest order, in lines.
const MAX_LINES: usize = 3;
/// Largest quantity of one line.
const MAX_QUANTITY: usize = 3;

/// The sku of product `index`, e.g. `BENCH-07`.
pub(crate) fn sku(index: usize) -> String {
    format!("BENCH-{index:02}")
}

/// The customer id of customer `index`, e.g. `bench-customer-042`.
pub(crate) fn customer(index: usize) -> String {
    format!("bench-customer-{index:03}")
}

/// The unit price of product `index`, in minor units: 1.00, 2.00, ... 20.00.
pub(crate) fn unit_price_minor(index: usize) -> i64 {
    (index as i64 + 1) * 100
}

/// One line of a bench order.
#[derive(Clone, Debug)]
pub(crate) struct BenchLine {
    /// The product's sku.
    pub(crate) sku: String,
    /// Units ordered, 1 to 3.
    pub(crate) quantity: i32,
}

/// One order as both systems receive it.
#[derive(Clone, Debug)]
pub(crate) struct BenchOrder {
    /// The paying customer.
    pub(crate) customer_id: String,
    /// One to three lines, each sku at most once, sorted by sku. The monolith
    /// locks product rows in this order, so two of its transactions never deadlock.
    pub(crate) lines: Vec<BenchLine>,
}

/// A deterministic stream of random orders (a linear congruential generator:
/// no dependency, and good enough to spread orders over skus and customers).
#[derive(Debug)]
pub(crate) struct OrderGenerator {
    state: u64,
}

impl OrderGenerator {
    /// A generator whose orders depend only on `seed`; give each client its own.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D,
        }
    }

    /// The next order: a random customer and 1 to 3 distinct random products.
    pub(crate) fn next_order(&mut self) -> BenchOrder {
        let customer_id = customer(self.below(CUSTOMERS));
        let line_count = 1 + self.below(MAX_LINES);
        let mut products: Vec<usize> = (0..line_count).map(|_| self.below(PRODUCTS)).collect();
        products.sort_unstable();
        products.dedup();
        let lines = products
            .into_iter()
            .map(|index| BenchLine {
                sku: sku(index),
                quantity: 1 + self.below(MAX_QUANTITY) as i32,
            })
            .collect();
        BenchOrder { customer_id, lines }
    }

    fn below(&mut self, bound: usize) -> usize {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 33) % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_have_one_to_three_sorted_distinct_lines_of_known_products() {
        let mut orders = OrderGenerator::new(7);
        for _ in 0..1_000 {
            let order = orders.next_order();
            assert!((1..=MAX_LINES).contains(&order.lines.len()));
            let skus: Vec<&str> = order.lines.iter().map(|line| line.sku.as_str()).collect();
            let mut sorted = skus.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(skus, sorted, "sorted and distinct");
            assert!(
                order
                    .lines
                    .iter()
                    .all(|line| (1..=3).contains(&line.quantity))
            );
            assert!(order.customer_id.starts_with("bench-customer-"));
        }
    }

    #[test]
    fn the_same_seed_places_the_same_orders() {
        let (mut first, mut second) = (OrderGenerator::new(3), OrderGenerator::new(3));
        for _ in 0..100 {
            let (a, b) = (first.next_order(), second.next_order());
            assert_eq!(a.customer_id, b.customer_id);
            assert_eq!(a.lines.len(), b.lines.len());
        }
    }
}
