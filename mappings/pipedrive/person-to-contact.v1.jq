# Pipedrive person (API v2; webhooks v2 carry it under `.data`, polls carry it bare)
# -> canonical Contact v1. The primary e-mail and phone win, else the first one.
# A delete webhook has `data: null` and the last state under `previous`: every field null.
def record: if has("meta") then (.data // {}) else . end;
def primary(list): (list // []) | (map(select(.primary == true)) + .) | map(.value | select(type == "string" and . != "")) | .[0];
record |
{
  email: (primary(.emails) | if . == null then null else ascii_downcase end),
  first_name: (if (.first_name // "") == "" then null else .first_name end),
  last_name: (if (.last_name // "") == "" then null else .last_name end),
  phone: primary(.phones)
}
