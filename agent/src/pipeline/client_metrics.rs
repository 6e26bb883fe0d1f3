//! The pipeline's metric families per client: the per-client series
//! (`derive.per_client.metrics`) and the events not kept under their client's own id.

use authstat_core::metrics::{Families, Family, Sample};

use super::metrics::{labelled, load};
use super::stats::{NodeTotals, Reading};

authstat_core::family!(
    CLIENT_AUTHENTICATIONS,
    "authstat_client_authentications_total",
    Counter,
    "{authentication}",
    true,
    ["client", "outcome"],
    "User authentications of this node per client by outcome, since the agent started (derive.per_client.metrics; at most max_metric_clients clients, the rest under client=\"\")."
);

authstat_core::family!(
    CLIENT_TOKENS,
    "authstat_client_tokens_issued_total",
    Counter,
    "{token}",
    true,
    ["client", "grant_type", "token_type"],
    "Tokens issued on this node per client by grant type and token type, since the agent started (derive.per_client.metrics; at most max_metric_clients clients, the rest under client=\"\")."
);

authstat_core::family!(
    DIMENSIONS_SET_APART,
    "authstat_client_figures_set_apart_total",
    Counter,
    "{event}",
    true,
    ["reason"],
    "Events whose figures (a user, an authentication, tokens) were not kept under their client's or realm's own id: `too_long` (an id over 256 bytes: kept only in the cluster's figures) or `over_cap` (beyond derive.per_client.max_per_month: kept under other_clients)."
);

/// The per-client series of `totals`, when they are on.
pub(super) fn client_series(totals: &NodeTotals, out: &mut Families) {
    if totals.client_series.is_some() {
        let per_client = || totals.clients.iter();
        out.push((
            &CLIENT_AUTHENTICATIONS,
            labelled(per_client().flat_map(|(client, c)| {
                c.authentications
                    .iter()
                    .map(move |(o, n)| ([client.clone(), o.as_str().to_owned()], *n))
            })),
        ));
        out.push((
            &CLIENT_TOKENS,
            labelled(per_client().flat_map(|(client, c)| {
                c.tokens
                    .iter()
                    .map(move |(g, t, n)| ([client.clone(), g.to_owned(), t.to_owned()], n))
            })),
        ));
    }
}

/// Events whose figures were not kept under their own id, by reason.
pub(super) fn set_apart(r: &Reading) -> (&'static Family, Vec<Sample>) {
    (
        &DIMENSIONS_SET_APART,
        labelled([
            (["too_long".to_owned()], load(&r.dim_ids_too_long)),
            (["over_cap".to_owned()], load(&r.dim_ids_over_cap)),
        ]),
    )
}
