//! Carries the scheduler's events into the store: the one place where fetch's vocabulary meets
//! the app state, shared by the dashboard, the headless commands and the desk's clients.

use jiff::Timestamp;

use crate::fetch::Event;
use crate::store::Store;

/// Applies one scheduler event to the store; returns whether anything visible changed.
pub fn apply(store: &mut Store, event: &Event, now: Timestamp) -> bool {
    match event {
        Event::ConnectionsListed { connections } => store.listed(connections, now),
        Event::ConnectionsFound { connections, .. } => store.found(connections, now),
        Event::ProbeStarted { vehicle_id, .. } => store.probing(vehicle_id, now),
        Event::Observed { report } => store.observed(report, now),
        Event::Diagnosed {
            report,
            diagnosis,
            cause,
        } => store.diagnosed(report, diagnosis, cause.as_deref(), now),
        Event::Progress(progress) => store.set_progress(progress, now),
        Event::RateLimited { until, by_smartcar } => store.rate_limited(*until, *by_smartcar, now),
        Event::SweepCost { requests, eta_s } => store.set_sweep_cost(*requests, *eta_s, now),
        Event::SourceError { message } => store.source_failed(message, now),
        Event::SourceUnreachable(outage) => store.source_unreachable(outage, now),
        Event::SourceRecovered { source } => store.source_recovered(*source, now),
        Event::VinsLearned { vins } => store.learned_vins(vins, now),
        // What a lookup costs and how it ended is for whoever asked; the VINs came above.
        Event::VinLookupPlanned { .. }
        | Event::VinLookupProgress { .. }
        | Event::VinLookupDone { .. } => false,
    }
}
