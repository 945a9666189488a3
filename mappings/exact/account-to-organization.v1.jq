# Exact Online account (sync API crm/Accounts, as the poller publishes each row)
# -> canonical Organization v1. `Code` is fixed-width with leading spaces in Exact; it is not
# mapped (it is Exact's own key). Exact's address on the account is only City and Country.
def str_or_null: if . == null then null else (tostring | ltrimstr(" ") | if . == "" then null else . end) end;
{
  name: (.Name // ""),
  vat_number: (.VATNumber | str_or_null),
  chamber_of_commerce: (.ChamberOfCommerce | str_or_null),
  email: (.Email | str_or_null),
  phone: (.Phone | str_or_null),
  website: (.Website | str_or_null),
  city: (.City | str_or_null),
  country: (.Country | str_or_null)
}
