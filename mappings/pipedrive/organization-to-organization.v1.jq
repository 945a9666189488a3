# Pipedrive organization (API v2; webhooks v2 carry it under `.data`, polls carry it bare)
# -> canonical Organization v1. Pipedrive keeps no VAT or chamber-of-commerce number unless
# a custom field holds it; those stay null here (name + country is the natural key then).
def record: if has("meta") then (.data // {}) else . end;
def str_or_null: if . == null or . == "" then null else tostring end;
record |
{
  name: (.name // ""),
  address_line: (.address.value // null | str_or_null),
  postal_code: (.address.postal_code // null | str_or_null),
  city: (.address.locality // null | str_or_null),
  country: (.address.country // null | str_or_null)
}
