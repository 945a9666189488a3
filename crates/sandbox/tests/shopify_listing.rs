//! Listing contract of the Shopify Admin REST API emulator: `since_id`,
//! `updated_at_min/max` (inclusive), `limit` (default 50, at most 250), `fields`, results
//! ascending by ID, and cursor pagination through the `Link` header with `page_info`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::shopify_support as support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

fn new_customer(email: &str) -> Value {
    json!({"customer": {"email": email, "first_name": "Bob", "last_name": "Biller"}})
}

#[tokio::test]
async fn listing_filters_by_since_id_and_updated_at_min_ascending_by_id() {
    let sb = sandbox().await;
    let mut ids = Vec::new();
    let mut stamps = Vec::new();
    for n in 0..5 {
        let r = call(
            &sb,
            Method::POST,
            "customers.json",
            Some(new_customer(&format!("c{n}@x.io"))),
        )
        .await;
        let c = json(r).await["customer"].clone();
        ids.push(c["id"].as_u64().unwrap());
        stamps.push(c["updated_at"].as_str().unwrap().to_owned());
        sb.clock().advance(Duration::from_secs(60));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "IDs ascend");
    let listed = |q: String| {
        let sb = &sb;
        async move {
            let r = call(sb, Method::GET, &format!("customers.json?{q}"), None).await;
            assert_eq!(r.status(), StatusCode::OK, "{q}");
            json(r).await["customers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(format!("since_id={}", ids[1])).await,
        ids[2..].to_vec()
    );
    // Inclusive: the record updated exactly at the bound is listed again.
    let bound = stamps[3].replace('+', "%2B");
    assert_eq!(
        listed(format!("updated_at_min={bound}")).await,
        ids[3..].to_vec()
    );
    assert_eq!(
        listed(format!("updated_at_max={bound}")).await,
        ids[..4].to_vec()
    );
    assert_eq!(listed("limit=2".to_owned()).await, ids[..2].to_vec());
    let r = call(&sb, Method::GET, "customers.json?limit=251", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = call(&sb, Method::GET, "customers.json?fields=id,email", None).await;
    let first = json(r).await["customers"][0].clone();
    assert_eq!(first, json!({"id": ids[0], "email": "c0@x.io"}));
    let count = json(call(&sb, Method::GET, "customers/count.json", None).await).await;
    assert_eq!(count, json!({"count": 5}));
}

fn next_link(link: &str) -> Option<String> {
    link.split(", ")
        .find(|part| part.ends_with("rel=\"next\""))
        .map(|part| {
            part.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned()
        })
}

#[tokio::test]
async fn pages_follow_the_link_header_and_page_info_refuses_other_filters() {
    let sb = sandbox().await;
    for n in 0..5 {
        call(
            &sb,
            Method::POST,
            "customers.json",
            Some(new_customer(&format!("p{n}@x.io"))),
        )
        .await;
    }
    let first = call(&sb, Method::GET, "customers.json?limit=2", None).await;
    let link = header(&first, "link").unwrap();
    assert!(
        !link.contains("rel=\"previous\""),
        "no previous on the first page"
    );
    let next = next_link(&link).unwrap();
    let prefix = format!(
        "{}/admin/api/{V}/customers.json?limit=2&page_info=",
        sb.base_url()
    );
    assert!(next.starts_with(&prefix), "{link}");
    assert!(link.ends_with("; rel=\"next\""), "{link}");

    let mut seen: Vec<String> = json(first).await["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_owned())
        .collect();
    let mut url = Some(next);
    let mut pages = 1;
    while let Some(u) = url.take() {
        let r = client()
            .get(&u)
            .header("X-Shopify-Access-Token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let link = header(&r, "link").unwrap();
        assert!(link.contains("rel=\"previous\""), "{link}");
        url = next_link(&link);
        pages += 1;
        for c in json(r).await["customers"].as_array().unwrap() {
            seen.push(c["email"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["p0@x.io", "p1@x.io", "p2@x.io", "p3@x.io", "p4@x.io"]
    );

    let all = call(&sb, Method::GET, "customers.json", None).await;
    assert_eq!(header(&all, "link"), None, "everything fit on one page");

    let token = next_link(
        &header(
            &call(&sb, Method::GET, "customers.json?limit=1", None).await,
            "link",
        )
        .unwrap(),
    )
    .unwrap()
    .split("page_info=")
    .nth(1)
    .unwrap()
    .to_owned();
    let r = call(
        &sb,
        Method::GET,
        &format!("customers.json?page_info={token}&since_id=1"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
