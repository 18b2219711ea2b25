//! [`Reporter`]: how the executor tells the world what happens. The library only calls it; the
//! CLI decides whether that becomes terminal lines, JSON lines or nothing.

use crate::event::Record;

/// Receives every event as it is made durable, and free-form notices.
pub trait Reporter: Send + Sync {
    /// An event was written to the log.
    fn event(&self, record: &Record);
    /// Something worth telling the operator that is not an event (e.g. "waiting for 2 steps").
    fn notice(&self, text: &str);
    /// The run's plan, once it is known and before this invocation's first event: a live view
    /// learns from it how long each pause and analysis window lasts.
    fn plan(&self, _plan: &cutover_planner::dag::Plan) {}
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _record: &Record) {}
    fn notice(&self, _text: &str) {}
}
