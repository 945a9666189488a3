# Shopify order (REST Admin API 2025-01, webhook topics orders/*) -> canonical Order v1.
# Money stays the decimal string Shopify sends. `customer_id` is Shopify's customer ID (the
# native ID; the canonical contact is the one the xref links to shop/customers/<id>).
# A delete payload carries only `id`: the number falls back to it.
def str_or_null: if . == null or . == "" then null else tostring end;
{
  number: (.name // (.id | tostring)),
  customer_id: (.customer.id | str_or_null),
  currency: (.currency // .presentment_currency // "XXX"),
  status: .financial_status,
  ordered_at: .created_at,
  lines: [(.line_items // [])[] | {
    sku: (.sku | str_or_null),
    title: (.title // .name // ""),
    quantity: ((.quantity // 0) | tostring),
    unit_price: ((.price // "0") | tostring),
    product_id: (.product_id | str_or_null)
  }],
  subtotal: .subtotal_price,
  shipping_total: (.total_shipping_price_set.shop_money.amount // null),
  tax_total: .total_tax,
  total: .total_price
}
