"""Vegeta JSON targets for scripts/bench-ingest.sh: one signed ~2 KB Shopify orders/create
body (shape of Shopify's sample, saas-contracts.md 1.4), a unique X-Shopify-Webhook-Id per
target. The URL is left as __URL__ for the script to fill in."""
import base64, hashlib, hmac, json, sys

secret, count = sys.argv[1].encode(), int(sys.argv[2])
lines = [{"id": 487817672276298554 + i, "title": f"Aviator sunglasses {i}", "quantity": 1,
          "sku": f"SKU2006-{i:03}", "price": "89.99", "product_id": 788032119674292922,
          "variant_id": None} for i in range(9)]
order = {"id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
         "email": "jon@doe.ca", "created_at": "2020-09-10T04:26:51-04:00",
         "updated_at": "2020-09-10T04:26:51-04:00", "name": "#9999", "order_number": 1234,
         "currency": "USD", "total_price": "254.98", "subtotal_price": "244.98",
         "financial_status": "paid", "fulfillment_status": None, "line_items": lines,
         "customer": {"id": 115310627314723954, "email": "john@test.com", "first_name": "John",
                      "last_name": "Smith"},
         "billing_address": {"first_name": "Bob", "city": "Billtown", "country_code": "US"},
         "shipping_address": {"first_name": "Steve", "city": "Shippington", "country_code": "US"}}
body = json.dumps(order).encode()
body += b" " * max(0, 2048 - len(body))  # JSON allows trailing whitespace: exactly 2 KB
signature = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
b64 = base64.b64encode(body).decode()
for i in range(count):
    print(json.dumps({"method": "POST", "url": "__URL__", "body": b64, "header": {
        "Content-Type": ["application/json"], "X-Shopify-Topic": ["orders/create"],
        "X-Shopify-Hmac-Sha256": [signature], "X-Shopify-Shop-Domain": ["acme.myshopify.com"],
        "X-Shopify-API-Version": ["2025-01"], "X-Shopify-Webhook-Id": [f"bench-{i}"]}}))
