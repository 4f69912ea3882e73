//! The engine's settings, as the engine uses them: an owned copy of the
//! host's `pyb_config`, checked by the C API (`capi/config.rs`).

/// An owned, validated copy of `pyb_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EngineConfig {
    pub python_home: Option<String>,
    pub virtual_env: Option<String>,
    pub module_search_paths: Vec<String>,
    pub isolated: bool,
    pub ignore_sigpipe: bool,
    pub previous_threads_timeout_ms: u32,
}
