//! `canary-pilot events [APP] [--follow]`: the event log, oldest first.

use std::time::Duration;

use super::remote::{json_text, print_json, Output, Remote};
use super::{Failure, Width};
use crate::api::requests::EventsQuery;
use crate::api::views::{EventList, EventView};
use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    app: Option<String>,
    /// How many of the newest events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Keep printing new events as they happen (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Events `--follow` asks for on each poll.
const FOLLOW_WINDOW: usize = 1000;

pub async fn run(args: EventsArgs, output: Output) -> Result<(), Failure> {
    let client = args.remote.client()?;
    let query = EventsQuery {
        app: args.app.clone(),
        limit: Some(args.limit),
    };
    let events = client.events(&query).await?;
    if args.follow {
        return follow(&client, args.app, events, output).await;
    }
    match output {
        Output::Json => print_json(&EventList { events }),
        Output::Text => {
            for e in &events {
                emit!("{}", event_line(e, Width::of_stdout()));
            }
        }
    }
    Ok(())
}

/// `events --follow`: prints the events already fetched, then new ones as they come. A poll
/// that fails is tried again on the next second.
async fn follow(
    client: &Client,
    app: Option<String>,
    first: Vec<EventView>,
    output: Output,
) -> Result<(), Failure> {
    let print = |e: &EventView| match output {
        Output::Json => emit!("{}", json_text(e, false)),
        Output::Text => emit!("{}", event_line(e, Width::of_stdout())),
    };
    first.iter().for_each(print);
    let mut seen = first;
    let query = EventsQuery {
        app,
        limit: Some(FOLLOW_WINDOW),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let Ok(events) = client.events(&query).await else {
            continue;
        };
        let start = after_last(&events, seen.last());
        events[start..].iter().for_each(print);
        if start < events.len() {
            seen = events;
        }
    }
}

/// Where the events after `last` begin: after its last occurrence, or at the start.
fn after_last(events: &[EventView], last: Option<&EventView>) -> usize {
    last.and_then(|last| events.iter().rposition(|e| e == last))
        .map_or(0, |i| i + 1)
}

/// One line per event: time, app, kind, phases, weight, version, reason. Where that does not
/// fit the width, the reason goes below, wrapped, and the rest is said without padding.
pub fn event_line(e: &EventView, width: Width) -> String {
    let head = format!(
        "{}  {:<12} {:<16} {} -> {}  canary {:>3}%  {}",
        e.time,
        e.app,
        e.kind.as_str(),
        e.from.as_str(),
        e.to.as_str(),
        e.weight,
        e.version.as_deref().unwrap_or("-"),
    );
    let whole = format!("{head}  {}", e.reason);
    if width.fits(&whole) {
        return whole;
    }
    let head = if width.fits(&head) {
        head
    } else {
        format!(
            "{} {} {} {}->{} {}% {}",
            e.time,
            e.app,
            e.kind.as_str(),
            e.from.as_str(),
            e.to.as_str(),
            e.weight,
            e.version.as_deref().unwrap_or("-"),
        )
    };
    let mut lines = vec![width.cut(&head)];
    lines.extend(width.wrap("    ", &e.reason, 4));
    lines.join("\n")
}
