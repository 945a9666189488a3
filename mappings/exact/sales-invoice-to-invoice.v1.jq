# Exact Online sales invoice (sync API salesinvoice/SalesInvoices, as the poller publishes
# each row) -> canonical Invoice v1. Amounts become decimal strings; dates are OData
# `/Date(ms)/` values, which the transformer reads as dates. Status 10 draft, 20 open,
# 50 processed. Lines are a deferred collection in Exact and are not in the sync row.
def str_or_null: if . == null or . == "" then null else tostring end;
{
  number: (.InvoiceNumber // .InvoiceID | tostring),
  order_id: (.OrderNumber | str_or_null),
  organization_id: (.InvoiceTo | str_or_null),
  currency: (.Currency // "EUR"),
  status: ({"10": "draft", "20": "open", "50": "processed"}[(.Status // "") | tostring] // (.Status | str_or_null)),
  issued_on: .InvoiceDate,
  due_on: .DueDate,
  subtotal: (if .AmountDC == null or .VATAmountDC == null then null else (.AmountDC - .VATAmountDC | tostring) end),
  tax_total: (.VATAmountDC | str_or_null),
  total: (.AmountDC | str_or_null)
}
