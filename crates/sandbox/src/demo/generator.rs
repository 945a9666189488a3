//! Made-up Shopify customers and changes to them, for the demo stream.
//!
//! Most steps create a customer or change one (phone, tags or state) with a fresh
//! `updated_at` in the shop's UTC offset (saas-contracts.md §1.4); about one step in twelve
//! re-delivers the previous webhook unchanged, as Shopify's retries do (§1.1, §1.3). A seed
//! makes the stream reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{OffsetDateTime, UtcOffset};

use crate::shopify::{Customer, CustomerIds, Delivery};

/// The next webhook the demo sends.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Create(Customer),
    Update(Customer),
    Redeliver(Delivery),
}

const FIRST_NAMES: [&str; 10] = [
    "Ada", "Bob", "Chidi", "Dana", "Emeka", "Freya", "Goran", "Hana", "Ivo", "Jun",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Biller", "Okafor", "Reyes", "Nwosu", "Lind", "Horvat", "Sato", "Peeters", "Park",
];

/// Makes up customers and changes to them, reproducibly from a seed.
#[derive(Debug)]
pub(crate) struct Generator {
    rng: StdRng,
    ids: CustomerIds,
    customers: Vec<Customer>,
    last: Option<Delivery>,
    /// The shop's UTC offset; payload times carry it (saas-contracts.md §1.4).
    offset: UtcOffset,
}

impl Generator {
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let offset = UtcOffset::from_hms(-5, 0, 0).unwrap_or(UtcOffset::UTC);
        Self {
            rng,
            ids: CustomerIds::default(),
            customers: Vec::new(),
            last: None,
            offset,
        }
    }

    pub fn next_step(&mut self) -> Step {
        let now = OffsetDateTime::now_utc().to_offset(self.offset);
        let roll: f64 = self.rng.random();
        if let Some(last) = self.last.as_ref().filter(|_| roll < 0.08) {
            return Step::Redeliver(last.clone());
        }
        if self.customers.is_empty() || roll < 0.45 {
            let n = self.customers.len();
            let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
            let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
            let email = format!(
                "{}.{}.{n}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            let customer = Customer::new(self.ids.next_id(), &email, first, last, now);
            self.customers.push(customer.clone());
            return Step::Create(customer);
        }
        let index = self.rng.random_range(0..self.customers.len());
        let change = self.rng.random_range(0..3u8);
        let customer = &mut self.customers[index];
        match change {
            0 => customer.phone = Some(format!("+1555{:07}", index % 10_000_000)),
            1 => {
                customer.tags = if customer.tags.is_empty() {
                    "vip".to_owned()
                } else {
                    String::new()
                }
            }
            _ => customer.state = "enabled".to_owned(),
        }
        customer.updated_at = now;
        Step::Update(customer.clone())
    }

    pub fn remember(&mut self, delivery: Delivery) {
        self.last = Some(delivery);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::shopify::ShopifyWebhooks;

    #[test]
    fn generator_creates_first_then_mixes_updates_and_redeliveries() {
        let mut g = Generator::new(Some(7));
        let sender =
            ShopifyWebhooks::new("http://127.0.0.1:9/x", "s", "acme.myshopify.com", "2025-01")
                .unwrap();
        let (mut creates, mut updates, mut redeliveries) = (0, 0, 0);
        for i in 0..400 {
            match g.next_step() {
                Step::Create(c) => {
                    creates += 1;
                    g.remember(sender.customer_delivery("customers/create", &c));
                }
                Step::Update(c) => {
                    assert!(i > 0, "the first step must create");
                    assert!(c.updated_at >= c.created_at);
                    updates += 1;
                    g.remember(sender.customer_delivery("customers/update", &c));
                }
                Step::Redeliver(d) => {
                    assert_eq!(
                        Some(&d),
                        g.last.as_ref(),
                        "a re-delivery repeats the last delivery exactly"
                    );
                    redeliveries += 1;
                }
            }
        }
        assert!(
            creates > 50 && updates > 50 && redeliveries > 5,
            "{creates} {updates} {redeliveries}"
        );
        let emails: std::collections::HashSet<_> =
            g.customers.iter().map(|c| c.email.clone()).collect();
        assert_eq!(
            emails.len(),
            g.customers.len(),
            "every customer has its own email"
        );
    }
}
