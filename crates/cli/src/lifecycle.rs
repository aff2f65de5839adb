//! `tessera admin revoke | grants | events | stats | housekeeping`.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use tessera_core::model::{EventKind, Grant, StoredEvent};
use tessera_core::operations::revocations::RevokedBy;
use tessera_core::store::{EventFilter, Inventory};
use tessera_core::{Authority, Operator};

use crate::output::Output;

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct RevokeArgs {
    /// Every grant of this user (username): the same action as `admin user revoke-all`.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Every grant of this client.
    #[arg(long)]
    pub(crate) client: Option<String>,
    /// One grant, by id (see `admin grants`).
    #[arg(long)]
    pub(crate) grant: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Keep printing new events as they come.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Only this user's events (username).
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Only this client's events (client_id).
    #[arg(long)]
    pub(crate) client: Option<String>,
    /// Only this grant's events (see `admin grants`).
    #[arg(long)]
    pub(crate) grant: Option<String>,
    /// Only events of this kind, like rotation_audit or reuse_detected.
    #[arg(long, value_parser = parse_event_kind)]
    pub(crate) kind: Option<EventKind>,
    /// At most this many (the newest), before following.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
}

fn parse_event_kind(text: &str) -> Result<EventKind, String> {
    EventKind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        format!("{text:?} is not an event kind ({})", names.join(", "))
    })
}

fn when(millis: i64) -> String {
    tessera_core::time::format_utc(millis)
}

pub async fn revoke(operator: &Operator, out: &Output, args: RevokeArgs) -> anyhow::Result<()> {
    let (target, count) = if let Some(username) = args.user {
        return log_out_everywhere(operator, out, &username).await;
    } else if let Some(client_id) = args.client {
        operator.client(&client_id).await?;
        (
            format!("client {client_id}"),
            operator.revoke_client_grants(&client_id, "admin").await?,
        )
    } else if let Some(grant_id) = args.grant {
        let revoked = operator
            .revoke_grant_by_id(&grant_id, "admin")
            .await
            .with_context(|| format!("grant {grant_id}"))?;
        (format!("grant {grant_id}"), usize::from(revoked))
    } else {
        bail!("one of --user, --client or --grant is required");
    };
    out.print(
        &json!({ "revoked_grants": count, "target": target }),
        Some(format!("revoked {count} grant(s) of {target}")),
    );
    Ok(())
}

/// `admin user revoke-all USERNAME` (and `admin revoke --user`): "log out everywhere", every
/// live grant of the user revoked as one audited action; prints how many.
pub async fn log_out_everywhere(
    operator: &Operator,
    out: &Output,
    username: &str,
) -> anyhow::Result<()> {
    let user = operator.user(username).await?;
    let count = operator
        .log_out_everywhere(&user, RevokedBy::CommandLine, None)
        .await?;
    let target = format!("user {username}");
    out.print(
        &json!({ "revoked_grants": count, "target": target, "user_id": user.id }),
        Some(format!("revoked {count} grant(s) of {target}")),
    );
    Ok(())
}

fn event_json(e: &StoredEvent) -> Value {
    json!({
        "id": e.id,
        "at": e.event.at.millis(),
        "kind": e.event.kind.name(),
        "client_id": e.event.client_id,
        "user_id": e.event.user_id,
        "grant_id": e.event.grant_id,
        "detail": e.event.detail,
    })
}

fn event_text(e: &StoredEvent) -> String {
    let ev = &e.event;
    format!(
        "{:>6}  {}  {:<27} client={} user={} grant={}{}",
        e.id,
        when(ev.at.millis()),
        ev.kind.name(),
        ev.client_id.as_deref().unwrap_or("-"),
        ev.user_id.as_deref().unwrap_or("-"),
        ev.grant_id.as_deref().unwrap_or("-"),
        if ev.detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", ev.detail)
        },
    )
}

fn grant_json(g: &Grant, events: &[StoredEvent]) -> Value {
    json!({
        "grant_id": g.id,
        "client_id": g.client_id,
        "scope": g.scope.to_string(),
        "created_at": g.created_at.millis(),
        "last_used_at": g.last_used_at.millis(),
        "revoked_at": g.revoked_at.map(|t| t.millis()),
        "has_refresh_token": g.has_refresh_token,
        "dpop_jkt": g.dpop_jkt,
        "chain": events.iter().map(event_json).collect::<Vec<_>>(),
    })
}

pub async fn grants(operator: &Operator, out: &Output, username: &str) -> anyhow::Result<()> {
    let user = operator.user(username).await?;
    let histories = operator.grant_histories(&user.id).await?;
    let values: Vec<Value> = histories
        .iter()
        .map(|h| grant_json(&h.grant, &h.events))
        .collect();
    let mut text = String::new();
    for h in &histories {
        let g = &h.grant;
        let state = match g.revoked_at {
            Some(t) => format!("revoked {}", when(t.millis())),
            None => "live".to_owned(),
        };
        text.push_str(&format!(
            "grant {}  client {}  scope \"{}\"  created {}  {}{}\n",
            g.id,
            g.client_id,
            g.scope,
            when(g.created_at.millis()),
            state,
            g.dpop_jkt
                .as_ref()
                .map(|jkt| format!("  DPoP-bound to {jkt}"))
                .unwrap_or_default()
        ));
        for e in &h.events {
            text.push_str(&format!(
                "    {}  {}{}\n",
                when(e.event.at.millis()),
                e.event.kind.name(),
                if e.event.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", e.event.detail)
                }
            ));
        }
    }
    if histories.is_empty() {
        text.push_str(&format!("{username} has no grants"));
    }
    out.print(&Value::Array(values), Some(text.trim_end().to_owned()));
    Ok(())
}

pub async fn events(operator: &Operator, out: &Output, args: EventsArgs) -> anyhow::Result<()> {
    let user_id = match &args.user {
        Some(username) => Some(operator.user(username).await?.id),
        None => None,
    };
    let mut filter = EventFilter {
        limit: args.limit,
        user_id,
        client_id: args.client.clone(),
        grant_id: args.grant.clone(),
        kind: args.kind,
        newest_first: true,
        ..EventFilter::default()
    };
    // The newest `limit`, printed oldest first; following goes on from the newest.
    let mut newest = operator.events(&filter).await?;
    newest.reverse();
    for e in &newest {
        out.print(&event_json(e), Some(event_text(e)));
    }
    if !args.follow {
        return Ok(());
    }
    filter.newest_first = false;
    if let Some(last) = newest.last() {
        filter.after_id = last.id;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        filter.limit = 1000;
        for e in operator.events(&filter).await? {
            filter.after_id = e.id;
            out.print(&event_json(&e), Some(event_text(&e)));
        }
    }
}

pub async fn stats(operator: &Operator, out: &Output) -> anyhow::Result<()> {
    let inventory = operator.inventory().await?;
    out.print(&stats_json(&inventory), Some(stats_text(&inventory)));
    Ok(())
}

/// The inventory for scripts: the text's lines, as fields.
fn stats_json(i: &Inventory) -> Value {
    json!({
        "clients": i.clients,
        "users": i.users,
        "live_grants": i.live_grants,
        "refresh_tokens": {
            "live": i.live_refresh_tokens,
            "revoked": i.revoked_refresh_tokens,
        },
        "events": i.events,
    })
}

/// The inventory for people: a label and a count a line, the counts right-aligned in one column.
fn stats_text(i: &Inventory) -> String {
    let lines = [
        ("clients", i.clients),
        ("users", i.users),
        ("live grants", i.live_grants),
        ("refresh tokens, live", i.live_refresh_tokens),
        ("refresh tokens, revoked", i.revoked_refresh_tokens),
        ("events", i.events),
    ];
    let label_width = lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    let count_width = lines
        .iter()
        .map(|(_, count)| count.to_string().len())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|(label, count)| format!("{label:<label_width$}  {count:>count_width$}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn housekeeping(authority: &Authority, out: &Output) -> anyhow::Result<()> {
    let c = authority.housekeeping().await?;
    out.print(
        &json!({
            "access_tokens": c.access_tokens,
            "codes": c.codes,
            "grants": c.grants,
            "events": c.events,
            "changes": c.changes,
            "dpop_proofs": c.dpop_proofs,
        }),
        Some(format!(
            "removed {} grants, {} codes, {} events, {} change-feed entries, {} stored access \
             tokens, {} seen DPoP proofs",
            c.grants, c.codes, c.events, c.changes, c.access_tokens, c.dpop_proofs
        )),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_core::store::Inventory;

    /// `admin stats` showed the tables (`legacy_refresh_tokens`, `access_tokens 0`), with
    /// counts wider than the column out of line.
    #[test]
    fn stats_show_what_an_operator_counts_aligned_and_the_same_in_json() {
        let inventory = Inventory {
            clients: 2,
            users: 1_250,
            live_grants: 31,
            live_refresh_tokens: 30,
            revoked_refresh_tokens: 4,
            events: 123_456,
        };
        assert_eq!(
            super::stats_text(&inventory),
            "clients                       2\n\
             users                      1250\n\
             live grants                  31\n\
             refresh tokens, live         30\n\
             refresh tokens, revoked       4\n\
             events                   123456"
        );
        assert_eq!(
            super::stats_json(&inventory),
            serde_json::json!({
                "clients": 2,
                "users": 1250,
                "live_grants": 31,
                "refresh_tokens": { "live": 30, "revoked": 4 },
                "events": 123456,
            })
        );
    }
}
