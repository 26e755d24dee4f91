//! Why the pipeline stopped: one family over the stages it joins.

use crate::encode::EncodeError;
use crate::rate::RateError;
use crate::script::ScriptError;
use crate::sink::SinkError;

/// A failure of one stage of the pipeline, which ends the step it happened in.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PipelineError {
    /// The scenario script failed making an event.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Script(#[from] ScriptError),
    /// The timeline could not follow the rate curve.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Rate(#[from] RateError),
    /// An event could not be encoded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Encode(#[from] EncodeError),
    /// The script scheduled more follow-ups than may wait at once.
    #[error("{cap} follow-ups are waiting, the cap (setting max_follow_ups): `{function}` is scheduled by {count} of them")]
    #[diagnostic(
        code(sim::pipeline::follow_up_cap),
        help("a follow-up that schedules more than one of itself multiplies without end; `sim check` shows how follow-ups grow. Raise MAX_FOLLOW_UPS only if the scenario really keeps that many waiting")
    )]
    FollowUpCap {
        /// The cap.
        cap: usize,
        /// The function most of the waiting follow-ups call.
        function: String,
        /// How many of them call it.
        count: usize,
    },
    /// The sink failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sink(#[from] SinkError),
    /// The group this instance makes the timeline with failed it (see [`super::Share`]).
    #[error("group `{group}`: {message}")]
    #[diagnostic(
        code(sim::pipeline::group),
        help("the shards this instance owned go to the other members of the group; what it made after its last commit is made again")
    )]
    Group {
        /// The group.
        group: String,
        /// What failed.
        message: String,
    },
}
