//! A grant's family timeline as an inline SVG, drawn on the server: no script, no image
//! request, readable by any browser and any test. Each event is a marker on a time axis, in
//! time order, with a `<title>` the browser shows on hover (who, what, when).

use maud::{html, Markup};
use tessera_core::model::{EventKind, FROM_ANOTHER_ADDRESS};
use tessera_core::operations::console::GrantTimeline;
use tessera_core::time::format_utc;

const WIDTH: i64 = 900;
const HEIGHT: i64 = 200;
/// The labels' size in the drawing's units. The drawing is never narrower than 720 px on the
/// page (the console's style scrolls it sideways in its box instead), so a label is never
/// smaller than 13 × 720 / 900 ≈ 10.4 px: a phone no longer shrinks it to 4.
const LABEL_SIZE: i64 = 13;
const LEFT: i64 = 40;
const RIGHT: i64 = WIDTH - 40;
const AXIS_Y: i64 = 110;
/// Markers closer than this are pushed apart, keeping their order: a rotation and its replay
/// a second later must both be visible.
const MIN_GAP: i64 = 18;

/// The colour of a kind of event, and the row above the axis it sits on (0: the family's life,
/// 1: retries, 2: trouble).
fn style(kind: EventKind) -> (&'static str, i64) {
    match kind {
        EventKind::Issued => ("#16a34a", 0),
        EventKind::Rotated | EventKind::Refreshed => ("#2563eb", 0),
        EventKind::RetryReplayed => ("#0891b2", 1),
        EventKind::ConcurrentRefreshRefused => ("#d97706", 1),
        EventKind::ReuseDetected | EventKind::CodeReused => ("#dc2626", 2),
        // Reuse that audit mode answered: trouble, but nothing revoked.
        EventKind::RotationAudit => ("#ea580c", 2),
        EventKind::Revoked | EventKind::GrantRevokedByAdmin => ("#7f1d1d", 2),
        _ => ("#6b7280", 1),
    }
}

/// One marker: where it goes, what it is.
#[derive(Debug)]
struct Marker {
    x: i64,
    at: i64,
    kind: &'static str,
    colour: &'static str,
    row: i64,
    title: String,
    /// A replay from another address than its rotation's: drawn as trouble and labelled.
    from_another_address: bool,
}

/// A replay inside the retry window from another address than the rotation it replays is how a
/// stolen rotated-out token shows: its marker sits on the trouble row in its own colour.
pub(super) const ANOTHER_ADDRESS_COLOUR: &str = "#be185d";

/// The x position of each instant on the axis from `start` to `end`, pushed apart by
/// `MIN_GAP` and then squeezed back into the axis if the pushing overran it.
fn positions(instants: &[i64], start: i64, end: i64) -> Vec<i64> {
    let span = (end - start).max(1) as f64;
    let width = (RIGHT - LEFT) as f64;
    let mut xs: Vec<i64> = Vec::with_capacity(instants.len());
    for &at in instants {
        let x = LEFT + (((at - start) as f64 / span) * width).round() as i64;
        let x = match xs.last() {
            Some(&previous) if x < previous + MIN_GAP => previous + MIN_GAP,
            _ => x,
        };
        xs.push(x);
    }
    if let Some(&last) = xs.last() {
        if last > RIGHT {
            let scale = (RIGHT - LEFT) as f64 / (last - LEFT) as f64;
            for x in &mut xs {
                *x = LEFT + ((*x - LEFT) as f64 * scale).round() as i64;
            }
        }
    }
    xs
}

/// Who caused an event, for its hover text.
fn who(event: &tessera_core::model::Event, timeline: &GrantTimeline) -> String {
    let user = match (&event.user_id, &timeline.user) {
        (Some(id), Some(user)) if *id == user.id => user.username.clone(),
        (Some(id), _) => id.clone(),
        (None, _) => "-".to_owned(),
    };
    let client = timeline
        .client
        .as_ref()
        .map_or_else(|| timeline.grant.client_id.clone(), |c| c.name.clone());
    let mut text = format!("user {user}, client {client}");
    if let Some(source) = &event.source {
        text.push_str(&format!(", from {source}"));
    }
    text
}

/// The SVG of a grant's timeline: the grant's creation, every event of its family in order,
/// its revocation, and its expiry under the client's policy when that falls on the drawing.
pub fn svg(timeline: &GrantTimeline) -> Markup {
    let now_millis = timeline.now.millis();
    let grant = &timeline.grant;
    let mut events: Vec<_> = timeline.events.iter().map(|s| &s.event).collect();
    events.sort_by_key(|e| e.at.millis());
    let start = events
        .first()
        .map_or(grant.created_at.millis(), |e| e.at.millis())
        .min(grant.created_at.millis());
    let last = events.last().map_or(start, |e| e.at.millis());
    let end = grant
        .revoked_at
        .map_or(now_millis.max(last), |r| r.millis().max(last))
        .max(start + 1000);
    let instants: Vec<i64> = events.iter().map(|e| e.at.millis()).collect();
    let xs = positions(&instants, start, end);
    let markers: Vec<Marker> = events
        .iter()
        .zip(xs)
        .map(|(event, x)| {
            let from_another_address = event.kind == EventKind::RetryReplayed
                && event.detail.contains(FROM_ANOTHER_ADDRESS);
            let (colour, row) = if from_another_address {
                (ANOTHER_ADDRESS_COLOUR, 2)
            } else {
                style(event.kind)
            };
            let mut title = format!(
                "{} at {} ({} ms), {}",
                event.kind.name(),
                format_utc(event.at.millis()),
                event.at.millis() % 1000,
                who(event, timeline)
            );
            if !event.detail.is_empty() {
                title.push_str(&format!(": {}", event.detail));
            }
            Marker {
                x,
                at: event.at.millis(),
                kind: event.kind.name(),
                colour,
                row,
                title,
                from_another_address,
            }
        })
        .collect();
    let expiry = timeline.expires_at.map(|t| t.millis());
    let expiry_on_axis = expiry.filter(|&t| t <= end);
    let expiry_x = expiry_on_axis.and_then(|t| positions(&[t], start, end).first().copied());
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            width="100%" role="img" aria-label="Timeline of the grant's token family" {
            title { "Grant " (grant.id) ": " (markers.len()) " events" }
            line x1=(LEFT) y1=(AXIS_Y) x2=(RIGHT) y2=(AXIS_Y) stroke="#9ca3af" stroke-width="2" {}
            text x=(LEFT) y=(AXIS_Y + 24) font-size=(LABEL_SIZE) fill="#4b5563" { (format_utc(start)) }
            text x=(RIGHT) y=(AXIS_Y + 24) font-size=(LABEL_SIZE) fill="#4b5563" text-anchor="end" {
                (format_utc(end))
            }
            @if let Some(x) = expiry_x {
                g.expiry {
                    title { "expires at " (format_utc(expiry.unwrap_or_default())) " under the client's policy" }
                    line x1=(x) y1="20" x2=(x) y2=(AXIS_Y + 8) stroke="#9333ea" stroke-dasharray="4 3" {}
                    text x=(x) y="14" font-size=(LABEL_SIZE) fill="#9333ea" text-anchor="middle" { "expiry" }
                }
            }
            @for (n, m) in markers.iter().enumerate() {
                @let y = AXIS_Y - 22 - m.row * 26;
                g.event data-kind=(m.kind) data-at=(m.at) data-order=(n)
                    data-from-another-address=[m.from_another_address.then_some("true")] {
                    title { (m.title) }
                    line x1=(m.x) y1=(y) x2=(m.x) y2=(AXIS_Y) stroke=(m.colour) stroke-width="1" {}
                    circle cx=(m.x) cy=(y) r="7" fill=(m.colour) stroke="#fff" stroke-width="2" {}
                    text x=(m.x) y=(AXIS_Y + 42 + (n as i64 % 3) * (LABEL_SIZE + 2)) font-size=(LABEL_SIZE) fill=(m.colour)
                        text-anchor="middle" {
                        (m.kind) @if m.from_another_address { " (another address)" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_instants_are_pushed_apart_in_order_and_kept_on_the_axis() {
        let xs = positions(&[0, 1, 2, 1000], 0, 1000);
        assert!(xs.windows(2).all(|w| w[1] >= w[0] + MIN_GAP), "{xs:?}");
        assert_eq!(xs[0], LEFT);
        assert!(*xs.last().unwrap() <= RIGHT, "{xs:?}");
    }
}
