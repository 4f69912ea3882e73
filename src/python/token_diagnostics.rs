//! Why a token does not close the calling thread's innermost scope or region:
//! the messages behind `PYB_E_BAD_TOKEN` and `PYB_E_WRONG_THREAD`. Error
//! paths only, so the hot paths compare one token and call here when it differs.

use crate::abi::status::*;
use crate::runtime::error::Error;
use crate::runtime::frames::Frame;
use crate::runtime::thread_slot::{CurrentThread, issuer_of};
use crate::runtime::token::{Token, TokenKind, TokenValue};

/// Explains why `value` does not close the calling thread's innermost scope
/// or region. Error path only: it may take locks and search.
#[cold]
#[inline(never)]
pub(crate) fn misplaced_token(value: TokenValue, thread: Option<CurrentThread>) -> Error {
    let bad = |message: String| Error::new(PYB_E_BAD_TOKEN, message);
    let Some(token) = Token::decode(value) else {
        return bad(format!("{value:#x} is not a pybridge token"));
    };
    let issuer = issuer_of(token);
    let thread = match (thread, issuer) {
        (_, None) => {
            return bad(format!(
                "token {value:#x} belongs to no live thread: it was never issued or its \
                 thread has exited"
            ));
        }
        (Some(thread), Some(issuer)) if issuer.id == thread.id => thread,
        (_, Some(issuer)) => {
            return Error::new(
                PYB_E_WRONG_THREAD,
                format!(
                    "token {value:#x} belongs to {}; close a scope or region on the thread \
                     that opened it",
                    issuer.describe()
                ),
            );
        }
    };
    let owner = thread.owner();
    let depth = owner.frames.depth();
    let frames = owner.frames.to_vec();
    let (what, closer) = match token.kind {
        TokenKind::Gil => ("GIL scope", "pyb_gil_release"),
        TokenKind::AllowThreads | TokenKind::AllowThreadsNoop => {
            ("allow-threads region", "pyb_end_allow_threads")
        }
    };
    // The open frames of the token's kind, bottom first.
    let open: Vec<TokenValue> = frames
        .iter()
        .filter_map(|frame| match (token.kind, frame) {
            (TokenKind::Gil, Frame::Scope(scope)) => Some(scope.token),
            (TokenKind::AllowThreads, Frame::AllowThreads(region)) => Some(region.token),
            (TokenKind::AllowThreadsNoop, Frame::NoopAllowThreads { token }) => Some(*token),
            _ => None,
        })
        .collect();
    if let Some(position) = open.iter().position(|&open| open == value) {
        if token.kind == TokenKind::Gil && depth == 0 && owner.frames.in_allow_threads_region() {
            return bad(format!(
                "token {value:#x} is a GIL scope opened before the allow-threads region this \
                 thread is in: call pyb_end_allow_threads first"
            ));
        }
        if token.kind == TokenKind::AllowThreads && depth > 0 {
            return bad(format!(
                "this thread still holds {depth} GIL scope(s) opened inside the allow-threads \
                 region: release them before pyb_end_allow_threads"
            ));
        }
        return bad(format!(
            "{what} token {value:#x} is not the innermost one ({} open, this is number {}): \
             close them in LIFO order with {closer}",
            open.len(),
            position + 1
        ));
    }
    if token.serial < owner.generation_start.get() {
        return bad(format!(
            "token {value:#x} comes from an earlier engine: tokens die with pyb_engine_shutdown"
        ));
    }
    bad(format!(
        "{what} token {value:#x} was already closed ({} open on this thread); each token \
         is closed exactly once, with {closer}",
        open.len()
    ))
}
