//! Privilege separation: starting the privileged helper, the link to it, and the front's
//! demotion to an unprivileged user.

pub mod demote;
pub mod dynamic_id;
pub mod link;
pub mod passwd;
pub mod seccomp;
pub mod spawn;
pub mod view;
