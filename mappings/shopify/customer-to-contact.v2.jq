# Shopify customer (REST Admin API 2025-01, webhook topics customers/*) -> canonical Contact v2.
# v2 adds the company from the customer's default address; Shopify keeps no language on a
# customer, so `locale` stays null. A customers/delete payload carries only `id`.
{
  email: (if (.email | type) == "string" and .email != "" then .email | ascii_downcase else null end),
  first_name: .first_name,
  last_name: .last_name,
  phone: .phone,
  company: (.default_address.company // null | if . == "" then null else . end)
}
