# Shopify customer (REST Admin API 2025-01, webhook topics customers/*) -> canonical Contact v1.
# Input: the verbatim webhook payload. Output: the contact's own fields; Switchboard adds the
# canonical ID and the source reference. A customers/delete payload carries only `id`, so
# every field may be null.
{
  email: (if (.email | type) == "string" and .email != "" then .email | ascii_downcase else null end),
  first_name: .first_name,
  last_name: .last_name,
  phone: .phone
}
