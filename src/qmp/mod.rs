//! The QMP layer: request checking, dispatch through the gate, and error mapping.

pub mod args;
pub mod call;
pub mod dispatch;
pub mod error;
mod unvisited;

pub use error::AgentError;
