# Pipedrive deal (API v2; webhooks v2 carry it under `.data`, polls carry it bare)
# -> canonical Deal v1. IDs of the organization and person are Pipedrive's native IDs.
def record: if has("meta") then (.data // {}) else . end;
def str_or_null: if . == null or . == "" then null else tostring end;
record |
{
  title: (.title // ""),
  value: (.value | str_or_null),
  currency: (.currency | str_or_null),
  status: (.status | str_or_null),
  stage: (.stage_id | str_or_null),
  organization_id: (.org_id | str_or_null),
  contact_id: (.person_id | str_or_null),
  expected_close_on: (.expected_close_date | str_or_null),
  closed_at: (.close_time | str_or_null)
}
