//! The helper round trip measured directly, with the front's own spawn and link code.

use crate::*;

/// The helper round trip without a client: the front's own spawn and link code starts the
/// helper beside the agent binary exactly as the front does (joined on this process's CPU,
/// sandboxed), and times FreezeStatus calls. Returns the p50 in seconds.
pub(crate) fn direct_helper_round_trip(cfg: &Config, dir: &Path) -> Result<f64, String> {
    use qemu_ga_rs::privsep::{link::HelperLink, spawn};
    use qga_helper::{placement, protocol::ask};
    let helper = cfg.agent.with_file_name(qga_helper::protocol::HELPER_BINARY);
    let state = dir.join("direct-state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let cpu = placement::current_cpu().ok_or("no current CPU")?;
    let args: Vec<std::ffi::OsString> =
        vec!["--statedir".into(), state.into(), "--enabled".into(), "".into(), "--cpu".into(), cpu.to_string().into()];
    // Pinned in a child thread only, so the bench's own placement is left alone.
    std::thread::scope(|s| {
        s.spawn(|| {
            placement::pin_to(cpu).map_err(|e| e.to_string())?;
            let h = spawn::spawn(&helper, &args).map_err(|e| e.to_string())?;
            let mut child = h.child;
            let mut link = HelperLink::new(h.socket);
            let mut lat = Vec::with_capacity(10_000);
            for i in 0..11_000 {
                let t = Instant::now();
                link.ask(ask::freeze_status()).map_err(|_| "helper call failed".to_string())?;
                if i >= 1_000 {
                    lat.push(t.elapsed().as_secs_f64());
                }
            }
            let _ = link.ask(ask::quit());
            let _ = child.wait();
            Ok(pct(&lat, 0.5))
        })
        .join()
        .map_err(|_| "round-trip thread panicked".to_string())?
    })
}
