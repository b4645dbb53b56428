//! guest-get-fsinfo and guest-get-disks: the helper gathers them (the real mount table, sysfs,
//! statfs through its probes), the front turns them into 7.2's `GuestFilesystemInfo` and
//! `GuestDiskInfo` with the same members, optional members and order.

use super::Agent;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use qga_protocol::ask;
use qga_protocol::storage::{DiskAddress, DiskInfo, FsInfo};

pub fn get_fsinfo(agent: &mut Agent) -> Result<Value, AgentError> {
    let list = agent.helper.ask(ask::get_fsinfo())?;
    Ok(Value::List(list.into_iter().map(filesystem).collect()))
}

pub fn get_disks(agent: &mut Agent) -> Result<Value, AgentError> {
    let list = agent.helper.ask(ask::get_disks())?;
    Ok(Value::List(list.into_iter().map(disk).collect()))
}

/// A `uint64` member: 7.2 writes it as an unsigned integer.
fn uint(v: u64) -> Value {
    i64::try_from(v).map_or(Value::UInt(v), Value::Int)
}

fn filesystem(fs: FsInfo) -> Value {
    let mut d = Dict::new()
        .with("name", Value::str(fs.name))
        .with("mountpoint", Value::str(fs.mountpoint))
        .with("type", Value::str(fs.fstype));
    if let Some((used, total)) = fs.sizes {
        d = d.with("used-bytes", uint(used)).with("total-bytes", uint(total));
    }
    d.with("disk", Value::List(fs.disks.into_iter().map(address).collect())).into()
}

fn address(a: DiskAddress) -> Value {
    let pci = Dict::new()
        .with("domain", Value::Int(a.pci.domain))
        .with("bus", Value::Int(a.pci.bus))
        .with("slot", Value::Int(a.pci.slot))
        .with("function", Value::Int(a.pci.function));
    let mut d = Dict::new()
        .with("pci-controller", pci.into())
        .with("bus-type", Value::str(a.bus_type.name()))
        .with("bus", Value::Int(a.bus))
        .with("target", Value::Int(a.target))
        .with("unit", Value::Int(a.unit));
    if let Some(s) = a.serial {
        d = d.with("serial", Value::str(s));
    }
    if let Some(dev) = a.dev {
        d = d.with("dev", Value::str(dev));
    }
    d.into()
}

fn disk(disk: DiskInfo) -> Value {
    let mut d = Dict::new().with("name", Value::str(disk.name)).with("partition", Value::Bool(disk.partition));
    if let Some(deps) = disk.dependencies {
        d = d.with("dependencies", Value::List(deps.into_iter().map(Value::str).collect()));
    }
    if let Some(a) = disk.address {
        d = d.with("address", address(a));
    }
    if let Some(alias) = disk.alias {
        d = d.with("alias", Value::str(alias));
    }
    d.into()
}
