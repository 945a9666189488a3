//! The sync API: `sync/CRM/Accounts`, `sync/SalesInvoice/SalesInvoices`, `sync/Deleted`.
//!
//! Contract facts followed (saas-contracts.md §3.4–§3.5):
//! - Rows come in `Timestamp` order, 1000 per page, with `__next` until the end.
//! - **Only the Timestamp field may be used as a filter**: `$filter=Timestamp gt <n>L`
//!   (the first run uses `Timestamp gt 1`). The official sample for `sync/Deleted` adds
//!   `and EntityType eq <n>`, so that one extra term is accepted there and nowhere else.
//!   Any other filter is a 400.
//! - `sync/Deleted` items carry `Timestamp`, `Division`, `EntityKey`, `EntityType` (2
//!   Accounts, 13 SalesInvoices) and `ID`.
//! - Endpoints without a `$select` answer 400 "Please add a $select or a $top=1 statement
//!   to the query string." (picqer/exact-php-client #556 and laravel-exact-online #30 for
//!   bulk-style endpoints; Airbyte's connector notes "the sync endpoints require selection
//!   of fields"). `ExactConfig::sync_requires_select` turns this off. `$top` is accepted
//!   (the message offers `$top=1`); `$orderby` is refused, as the order is the cursor's.
//!
//! Paging: the `$skiptoken` is the last row's Timestamp (`<n>L`), as sync entities are
//! keyed by Timestamp. A record changed after the walk started gets a new, higher
//! Timestamp and therefore shows up again further on, never in a page already served;
//! that is what lets a client that follows the documented algorithm (keep the highest
//! Timestamp, ask `gt` it, follow `__next`) neither miss nor repeat a change.

use serde_json::Value;

use super::api::envelope;
use super::entities::{EntityDef, SYNC_ACCOUNTS, SYNC_DELETED, SYNC_SALES_INVOICES};
use super::errors::ApiError;
use super::filter::{Expr, Op, Operand};
use super::query::{next_link, page, parse_options};
use super::state::Shared;
use super::store::Entity;
use super::values::Val;

/// The three emulated sync endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncSet {
    Accounts,
    SalesInvoices,
    Deleted,
}

impl SyncSet {
    /// `sync/{service}/{set}`: the service matches case-insensitively, the set exactly.
    pub fn find(service: &str, set: &str) -> Option<SyncSet> {
        if service.eq_ignore_ascii_case("CRM") && set == "Accounts" {
            Some(SyncSet::Accounts)
        } else if service.eq_ignore_ascii_case("SalesInvoice") && set == "SalesInvoices" {
            Some(SyncSet::SalesInvoices)
        } else {
            None
        }
    }

    fn def(self) -> &'static EntityDef {
        match self {
            SyncSet::Accounts => &SYNC_ACCOUNTS,
            SyncSet::SalesInvoices => &SYNC_SALES_INVOICES,
            SyncSet::Deleted => &SYNC_DELETED,
        }
    }
}

/// Answers one sync GET.
pub(crate) fn answer(
    shared: &Shared,
    division: i32,
    which: SyncSet,
    params: &[(String, String)],
    request_url: &str,
) -> Result<Value, ApiError> {
    let def = which.def();
    let opts = parse_options(params, def, &["$filter", "$select", "$top", "$skiptoken"])
        .map_err(ApiError::bad_request)?;
    // `$select=*` parses to "everything" (None), so look for the option itself.
    let has_select = params.iter().any(|(k, _)| k == "$select");
    if shared.config.sync_requires_select && !has_select && opts.top != Some(1) {
        return Err(ApiError::bad_request(
            "Please add a $select or a $top=1 statement to the query string.",
        ));
    }
    if let Some(filter) = &opts.filter
        && !allowed_filter(filter, which == SyncSet::Deleted)
    {
        return Err(ApiError::bad_request(
            "Only the Timestamp field can be used in the $filter of a sync endpoint, as in $filter=Timestamp gt 1L.",
        ));
    }
    let rows = {
        let inner = shared.lock();
        match which {
            SyncSet::Accounts => inner.store.rows(division, Entity::Account, true),
            SyncSet::SalesInvoices => inner.store.rows(division, Entity::SalesInvoice, true),
            SyncSet::Deleted => inner.store.deleted_rows(division),
        }
    };
    let page =
        page(rows, &opts, def, shared.config.sync_page_size).map_err(ApiError::bad_request)?;
    let next = next_link(request_url, &opts, &page);
    let set_url = shared.set_url(division, def.path);
    Ok(envelope(
        shared,
        def,
        &page.rows,
        opts.select.as_deref(),
        Some(set_url),
        next,
    ))
}

/// `Timestamp gt <int>`; on `sync/Deleted` also `… and EntityType eq <int>` (either order).
fn allowed_filter(expr: &Expr, deleted: bool) -> bool {
    let is_timestamp_gt = |e: &Expr| matches!(e, Expr::Cmp(Op::Gt, Operand::Field(f, _), Operand::Lit(Val::Int(_), _)) if f == "Timestamp");
    let is_entity_type = |e: &Expr| matches!(e, Expr::Cmp(Op::Eq, Operand::Field(f, _), Operand::Lit(Val::Int(_), _)) if f == "EntityType");
    match expr {
        e if is_timestamp_gt(e) => true,
        Expr::And(a, b) if deleted => {
            (is_timestamp_gt(a) && is_entity_type(b)) || (is_entity_type(a) && is_timestamp_gt(b))
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::filter::parse;
    use super::*;

    #[test]
    fn only_timestamp_gt_passes() {
        let ok = |text: &str, def: &EntityDef, deleted| {
            allowed_filter(&parse(text, def).unwrap(), deleted)
        };
        assert!(ok("Timestamp gt 1", &SYNC_ACCOUNTS, false));
        assert!(ok("Timestamp gt 5000000000L", &SYNC_ACCOUNTS, false));
        assert!(!ok("Timestamp ge 1L", &SYNC_ACCOUNTS, false));
        assert!(!ok("Name eq 'x'", &SYNC_ACCOUNTS, false));
        assert!(!ok(
            "Timestamp gt 1L and Name eq 'x'",
            &SYNC_ACCOUNTS,
            false
        ));
        assert!(ok(
            "Timestamp gt 1L and EntityType eq 2",
            &SYNC_DELETED,
            true
        ));
        assert!(ok(
            "EntityType eq 2 and Timestamp gt 1L",
            &SYNC_DELETED,
            true
        ));
        assert!(!ok("EntityType eq 2", &SYNC_DELETED, true));
        assert!(!ok(
            "Timestamp gt 1L or EntityType eq 2",
            &SYNC_DELETED,
            true
        ));
    }
}
