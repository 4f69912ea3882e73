//! Process state and the rules around it, with no Python object in sight: the
//! gate every entry passes, thread records and their tokens, errors, the
//! engine's settings, counters, logging, and the fork() fence.

pub(crate) mod cell_stack;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod fork;
pub(crate) mod frames;
pub(crate) mod gate;
pub(crate) mod gil_cell;
pub(crate) mod gil_stats;
pub(crate) mod gil_times;
pub(crate) mod ids;
pub(crate) mod interpreters;
pub(crate) mod logging;
pub(crate) mod stats;
pub(crate) mod thread_slot;
pub(crate) mod token;
