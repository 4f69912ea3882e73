//! Starting the engine: `Py_InitializeFromConfig` on a new engine-owned
//! thread, which stays Python's main thread until the shutdown finalizes it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::abi::status::*;
use crate::lifecycle::shutdown::EngineShutdown;
use crate::lifecycle::state::{
    CHANGED, EngineThread, ISOLATION_STICKS, LIFECYCLE, Phase, deadline_after, idle_for_fork,
    refuse_if_forked, wait_until,
};
use crate::python::interpreter;
use crate::runtime::config::EngineConfig;
use crate::runtime::error::{Error, Result};
use crate::runtime::gate;
use crate::runtime::stats;
use crate::runtime::thread_slot::ThreadSlot;

const ENGINE_THREAD_NAME: &str = "pybridge-python";

/// Python's main thread gets the usual 8 MiB main-thread stack, not Rust's 2 MiB.
const ENGINE_THREAD_STACK: usize = 8 << 20;

pub(crate) fn initialize(config: EngineConfig) -> Result<()> {
    refuse_if_forked()?;
    crate::runtime::fork::watch_for_fork(
        idle_for_fork,
        crate::runtime::fork::ForkSteps {
            before: crate::python::fork::before_fork,
            in_parent: crate::python::fork::after_fork_in_parent,
            in_child: crate::python::fork::after_fork_in_child,
        },
    );
    crate::runtime::thread_slot::on_thread_exit(crate::python::thread_exit::release_on_thread_exit);
    let on_engine_thread = ThreadSlot::existing().is_some_and(|thread| thread.is_engine_thread());
    // What this start waits for of the previous engine: its shutdown, if one
    // is under way, and its thread's exit (then its daemon threads, below).
    let previous_deadline = deadline_after(config.previous_threads_timeout_ms);
    let mut life = LIFECYCLE.lock();
    loop {
        if let Some(why) = &life.abandoned {
            return Err(abandoned_engine_error(why));
        }
        if on_engine_thread && life.phase != Phase::Running {
            // Python code run by finalization (atexit, __del__) calling back in.
            return Err(Error::new(
                PYB_E_WOULD_DEADLOCK,
                "pyb_engine_initialize was called on the engine thread while the engine \
                 stops; it would wait for itself",
            ));
        }
        match life.phase {
            Phase::Running => return Ok(()),
            Phase::Uninitialized => break,
            // Another start: it waits for the previous engine within its own bound.
            Phase::Initializing => CHANGED.wait(&mut life),
            Phase::ShuttingDown | Phase::Finalizing => {
                if wait_until(&CHANGED, &mut life, previous_deadline)
                    && matches!(life.phase, Phase::ShuttingDown | Phase::Finalizing)
                    && life.abandoned.is_none()
                {
                    return Err(Error::new(
                        PYB_E_TIMEOUT,
                        format!(
                            "the previous engine's shutdown was still under way after {} ms \
                             (pyb_config.previous_threads_timeout_ms); nothing was started. \
                             Call pyb_engine_shutdown to wait for it, then start again",
                            config.previous_threads_timeout_ms
                        ),
                    ));
                }
            }
        }
    }
    if let Some(first) = life.first_isolation.filter(|_| ISOLATION_STICKS) {
        if first != config.isolated {
            return Err(Error::invalid_argument(format!(
                "this CPython (before 3.11) keeps the first initialization's pre-configuration \
                 for the whole process: the first engine was {}, so this one cannot be {}",
                if first { "isolated" } else { "not isolated" },
                if config.isolated {
                    "isolated"
                } else {
                    "not isolated"
                },
            )));
        }
    }
    life.transition(Phase::Initializing);
    let lingering = std::mem::take(&mut life.lingering_threads);
    let previous_engine = life.engine_thread.take();
    drop(life);

    let mut unjoined = None;
    let started = start(
        &config,
        previous_engine,
        previous_deadline,
        &lingering,
        &mut unjoined,
    );

    let mut life = LIFECYCLE.lock();
    if unjoined.is_some() {
        // Joined by the next start (no engine thread runs meanwhile).
        life.engine_thread = unjoined;
    }
    match started {
        Ok((guest, engine_thread)) => {
            life.generation = life.generation.wrapping_add(1).max(1);
            life.first_isolation.get_or_insert(config.isolated);
            life.engine_thread = engine_thread;
            life.transition(Phase::Running);
            stats::ENGINES_STARTED.fetch_add(1, Ordering::Relaxed);
            log::info!(
                "pybridge engine {} running ({})",
                life.generation,
                if guest {
                    "guest in an existing interpreter"
                } else {
                    "owns its interpreter"
                }
            );
            Ok(())
        }
        Err(error) => {
            if error.status == PYB_E_TIMEOUT {
                life.lingering_threads = lingering;
            }
            life.transition(Phase::Uninitialized);
            Err(error)
        }
    }
}

/// Starts an engine: the previous engine thread joined (within `previous_deadline`;
/// one that has not exited by then is put in `unjoined`), the previous
/// interpreter's daemon threads gone, then a guest engine or a new engine thread.
fn start(
    config: &EngineConfig,
    previous_engine: Option<EngineThread>,
    previous_deadline: Option<Instant>,
    lingering: &[i64],
    unjoined: &mut Option<EngineThread>,
) -> Result<(bool, Option<EngineThread>)> {
    if let Some(thread) = previous_engine {
        if let Err(thread) = thread.join_until(previous_deadline) {
            *unjoined = Some(thread);
            return Err(Error::new(
                PYB_E_TIMEOUT,
                format!(
                    "the previous engine's thread ({ENGINE_THREAD_NAME}) had not exited after {} \
                     ms (pyb_config.previous_threads_timeout_ms): it is past Python's \
                     finalization but still runs (a log callback it called may be blocked); \
                     nothing was started",
                    config.previous_threads_timeout_ms
                ),
            ));
        }
    }
    wait_for_threads_to_exit(lingering, config.previous_threads_timeout_ms)?;
    gate::prepare();
    if let Some(host_interpreter) = interpreter::started_by_host() {
        gate::set_interpreter(host_interpreter);
        return Ok((true, None));
    }
    crate::sys::loader::promote_libpython_to_global();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let engine_config = config.clone();
    let thread = EngineThread::spawn(
        std::thread::Builder::new()
            .name(ENGINE_THREAD_NAME.to_string())
            .stack_size(ENGINE_THREAD_STACK),
        move || {
            engine_thread_main(engine_config, ready_tx);
            // Its last words; a host's log callback may hold it here.
            log::debug!("the engine thread exits");
        },
    )
    .map_err(|err| {
        Error::new(
            PYB_E_INIT_FAILED,
            format!("could not start the engine thread: {err}"),
        )
    })?;
    let error = match ready_rx.recv() {
        Ok(Ok(())) => return Ok((false, Some(thread))),
        Ok(Err(error)) => error,
        Err(_) => Error::new(
            PYB_E_INIT_FAILED,
            "the engine thread ended before Python was initialized",
        ),
    };
    // It failed before or inside Py_InitializeFromConfig and returns at once.
    if let Err(thread) = thread.join_until(previous_deadline) {
        *unjoined = Some(thread);
    }
    Err(error)
}

/// What a start gets once an engine was abandoned (`Outcome::Abandoned`).
pub(super) fn abandoned_engine_error(why: &str) -> Error {
    Error::new(
        PYB_E_SHUTTING_DOWN,
        format!(
            "no engine can start again in this process: the last one's shutdown was \
             abandoned, and Python stays initialized until the process exits. {why}"
        ),
    )
}

/// A daemon thread that sleeps through a finalization and wakes under a new
/// interpreter runs on its freed thread state (crashed 5/15 runs on 3.12), so a
/// new interpreter waits until the old one's threads are gone, or (3.14+)
/// parked by CPython for good, which they never leave.
fn wait_for_threads_to_exit(native_ids: &[i64], timeout_ms: u32) -> Result<()> {
    let deadline = deadline_after(timeout_ms);
    loop {
        let (parked, alive): (Vec<i64>, Vec<i64>) = native_ids
            .iter()
            .copied()
            .filter(|&id| crate::sys::thread::is_alive(id))
            .partition(|&id| interpreter::is_parked_by_finalization(id));
        if alive.is_empty() {
            if !parked.is_empty() {
                log::info!(
                    "daemon Python thread(s) {parked:?} of the previous interpreter are parked \
                     by CPython for good (they woke after its finalization began); not waiting"
                );
            }
            return Ok(());
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::new(
                PYB_E_TIMEOUT,
                format!(
                    "daemon Python thread(s) with native id(s) {alive:?} from the previous \
                     interpreter are still alive after {timeout_ms} ms; starting a new \
                     interpreter now could let them run on freed memory. {}",
                    lingering_thread_advice()
                ),
            ));
        }
        // A poll: threads CPython started have no handle to join, and nothing
        // tells when one exits but the kernel's record of it going away.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a host can do about daemon threads that outlive a shutdown, true for
/// the CPython in use.
fn lingering_thread_advice() -> &'static str {
    if cfg!(Py_3_14) {
        // An interrupted thread wakes, finds finalization begun and is parked,
        // which ends the wait; one asleep or in native code is not reached.
        "They are still asleep or in native code: CPython 3.14+ parks such a thread \
         for good when it next wants the GIL (and pybridge does not wait for parked \
         ones), but not before. End daemon threads before shutdown, shut down with \
         PYB_SHUTDOWN_INTERRUPT so that sleeping ones wake and park, or raise \
         pyb_config.previous_threads_timeout_ms"
    } else {
        "CPython ends such a thread when it next wants the GIL. End daemon threads \
         before shutdown, shut down with PYB_SHUTDOWN_INTERRUPT, or raise \
         pyb_config.previous_threads_timeout_ms"
    }
}

fn engine_thread_main(config: EngineConfig, ready: std::sync::mpsc::Sender<Result<()>>) {
    gate::set_engine_thread_tid(crate::sys::thread::os_tid());
    let main_state = match interpreter::start(&config) {
        Ok(state) => state,
        Err(error) => {
            gate::set_engine_thread_tid(0);
            let _ = ready.send(Err(error));
            return;
        }
    };
    gate::set_interpreter(main_state.interpreter());
    let _ = ready.send(Ok(()));
    loop {
        let (serial, interrupt) = {
            let mut life = LIFECYCLE.lock();
            loop {
                match life.request.as_mut() {
                    Some(request) if !request.taken_by_engine => {
                        request.taken_by_engine = true;
                        break (request.serial, request.interrupt);
                    }
                    _ => CHANGED.wait(&mut life),
                }
            }
        };
        // The tid is reset there, before the outcome: a next engine may set its own right after.
        if EngineShutdown::new(main_state, serial, interrupt).run() {
            break;
        }
    }
}
