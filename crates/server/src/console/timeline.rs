//! The history timeline of a stream, drawn as inline SVG: one lane per tag, one point
//! per history entry placed by its time order across all tags (so entries never
//! overlap), labelled with its short digest; the current entry of each tag is filled
//! and ringed, and each says what made it (imported, pushed, rolled back, scheduled). Each point's `<title>` holds the full digest, time and pull spec, and
//! it links to the image's page.
//! Linear in the number of entries.

use maud::{Markup, html};
use moor_api::image::ImageStream;

use super::pages::{image_url, short_digest};
use super::stream::entry_kinds;

const LANE_HEIGHT: usize = 62;
const LEFT: usize = 140;
const STEP: usize = 150;
const TOP: usize = 28;

/// The timeline of `s`'s status tags (nothing when no tag has history).
pub(crate) fn render(ns: &str, s: &ImageStream) -> Markup {
    let lanes: Vec<_> = s
        .status
        .tags
        .iter()
        .filter(|t| !t.items.is_empty())
        .collect();
    if lanes.is_empty() {
        return html! { p.muted { "No history yet." } };
    }
    // Every entry once, ordered by time (entries without a time first), then by lane
    // and position, so the order is stable.
    let mut order: Vec<(i64, usize, usize)> = lanes
        .iter()
        .enumerate()
        .flat_map(|(lane, t)| {
            t.items.iter().enumerate().map(move |(i, e)| {
                let at = e.created.as_ref().map_or(i64::MIN, |c| c.0.as_second());
                // Newest first within a tag: later positions are older.
                (at, lane, t.items.len() - i)
            })
        })
        .collect();
    order.sort_unstable();
    let kinds: Vec<Vec<&str>> = lanes.iter().map(|t| entry_kinds(s, t)).collect();
    let width = LEFT + order.len() * STEP + 40;
    let height = TOP + lanes.len() * LANE_HEIGHT;
    let name = s.metadata.name.as_deref().unwrap_or_default();
    html! {
        figure.timeline {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="timeline-title"
                width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) {
                title #timeline-title {
                    "History of the tags of " (name) ": " (order.len()) " entries in " (lanes.len()) " lanes"
                }
                @for (lane, t) in lanes.iter().enumerate() {
                    @let y = TOP + lane * LANE_HEIGHT;
                    g.lane-group data-tag=(t.tag) {
                        text.label x="8" y=(y + 4) { (t.tag) }
                        line.lane x1=(LEFT - 20) y1=(y) x2=(width - 20) y2=(y) {}
                    }
                }
                @for (slot, (_, lane, revision)) in order.iter().enumerate() {
                    @let kinds = &kinds[*lane];
                    @let t = lanes[*lane];
                    @let index = t.items.len() - revision;
                    @let e = &t.items[index];
                    @let x = LEFT + slot * STEP;
                    @let y = TOP + lane * LANE_HEIGHT;
                    @let current = index == 0;
                    @let kind = kinds[index];
                    @let time = e.created.as_ref().map(|c| c.0.to_string()).unwrap_or_default();
                    a href=(image_url(ns, name, &e.image)) {
                    g.entry data-tag=(t.tag) data-revision=(revision) data-kind=(kind) data-current[current] {
                        title {
                            (t.tag) " revision " (revision) @if current { " (current)" } ": "
                            (kind) ", " (e.image) " at " (time) " from " (e.docker_image_reference)
                        }
                        @if current {
                            circle.ring cx=(x) cy=(y) r="10" {}
                        }
                        circle.point.current[current] cx=(x) cy=(y) r="6" {}
                        text x=(x) y=(y + 20) text-anchor="middle" { (short_digest(&e.image)) }
                        text x=(x) y=(y - 12) text-anchor="middle" { (time.get(..16).unwrap_or(&time)) }
                        text.kind x=(x) y=(y + 34) text-anchor="middle" { (kind) }
                    }
                    }
                }
            }
            figcaption.muted { "Each lane is a tag, newest entries on the right; the ringed point is the tag's current image. The tables below list every entry with its full digest." }
        }
    }
}
