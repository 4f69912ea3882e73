//! The operating system and the dynamic loader: facts about this process
//! and its threads, with no pybridge state.

pub(crate) mod clock;
pub(crate) mod current_slot;
pub(crate) mod loader;
pub(crate) mod membarrier;
pub(crate) mod memory;
pub(crate) mod process;
pub(crate) mod python_home;
pub(crate) mod stack_check;
pub(crate) mod thread;
pub(crate) mod thread_exit;
pub(crate) mod wake_pipe;
pub(crate) mod wide_text;
