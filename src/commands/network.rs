//! guest-network-get-interfaces: one entry per interface in the order the kernel lists them,
//! with its hardware address, IPv4/IPv6 addresses and prefix lengths, and (for interfaces with
//! an address, as 7.2) the counters of /proc/net/dev. The MAC comes from the interface's
//! AF_PACKET entry, so the front needs no socket of its own.

use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use nix::ifaddrs::getifaddrs;
use std::net::IpAddr;

struct Interface {
    name: String,
    mac: Option<[u8; 6]>,
    addresses: Vec<(IpAddr, u32)>,
}

pub fn get_interfaces() -> Result<Value, AgentError> {
    let addrs = getifaddrs().map_err(|e| AgentError::os("getifaddrs() failed", e))?;
    let mut interfaces: Vec<Interface> = Vec::new();
    for ifa in addrs {
        let index = match interfaces.iter().position(|i| i.name == ifa.interface_name) {
            Some(i) => i,
            None => {
                interfaces.push(Interface { name: ifa.interface_name.clone(), mac: None, addresses: Vec::new() });
                interfaces.len() - 1
            }
        };
        let iface = &mut interfaces[index];
        let Some(addr) = ifa.address else { continue };
        if let Some(link) = addr.as_link_addr() {
            iface.mac.get_or_insert(link.addr().unwrap_or([0; 6]));
        } else if let Some(v4) = addr.as_sockaddr_in() {
            let prefix = ifa
                .netmask
                .as_ref()
                .and_then(|m| m.as_sockaddr_in())
                .map(|m| m.ip().to_bits().count_ones())
                .unwrap_or(0);
            iface.addresses.push((IpAddr::V4(v4.ip()), prefix));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let prefix = ifa
                .netmask
                .as_ref()
                .and_then(|m| m.as_sockaddr_in6())
                .map(|m| m.ip().to_bits().count_ones())
                .unwrap_or(0);
            iface.addresses.push((IpAddr::V6(v6.ip()), prefix));
        }
    }
    let stats = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    Ok(Value::List(interfaces.into_iter().map(|i| describe(i, &stats)).collect()))
}

fn describe(iface: Interface, proc_net_dev: &str) -> Value {
    let mut d = Dict::new().with("name", Value::str(iface.name.as_str()));
    if let Some(m) = iface.mac {
        let mac = format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
        d = d.with("hardware-address", Value::str(mac));
    }
    if !iface.addresses.is_empty() {
        let list = iface
            .addresses
            .iter()
            .map(|(ip, prefix)| {
                Dict::new()
                    .with("ip-address", Value::str(ip.to_string()))
                    .with("ip-address-type", Value::str(if ip.is_ipv4() { "ipv4" } else { "ipv6" }))
                    .with("prefix", Value::Int(*prefix as i64))
                    .into()
            })
            .collect();
        d = d.with("ip-addresses", Value::List(list));
        if let Some(stats) = statistics(proc_net_dev, &iface.name) {
            d = d.with("statistics", stats);
        }
    }
    d.into()
}

/// The counters of one interface from /proc/net/dev.
fn statistics(proc_net_dev: &str, name: &str) -> Option<Value> {
    let line = proc_net_dev.lines().skip(2).find_map(|l| {
        let (n, rest) = l.split_once(':')?;
        (n.trim() == name).then_some(rest)
    })?;
    let f: Vec<i64> = line.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    if f.len() < 12 {
        return None;
    }
    let names = [
        ("rx-bytes", 0),
        ("rx-packets", 1),
        ("rx-errs", 2),
        ("rx-dropped", 3),
        ("tx-bytes", 8),
        ("tx-packets", 9),
        ("tx-errs", 10),
        ("tx-dropped", 11),
    ];
    Some(names.iter().fold(Dict::new(), |d, (k, i)| d.with(k, Value::Int(f[*i]))).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3245      30    0    0    0     0          0         0     3245      30    0    0    0     0       0          0
  eth0: 212807691 4542  1    2    0     0          0         0   213860    2584    3    4    0     0       0          0
";

    #[test]
    fn statistics_are_read_from_proc_net_dev_columns() {
        let Some(Value::Dict(d)) = statistics(PROC_NET_DEV, "eth0") else { panic!("no eth0") };
        assert_eq!(d.get("rx-bytes"), Some(&Value::Int(212807691)));
        assert_eq!(d.get("rx-errs"), Some(&Value::Int(1)));
        assert_eq!(d.get("rx-dropped"), Some(&Value::Int(2)));
        assert_eq!(d.get("tx-packets"), Some(&Value::Int(2584)));
        assert_eq!(d.get("tx-dropped"), Some(&Value::Int(4)));
        assert!(statistics(PROC_NET_DEV, "eth1").is_none());
    }

    #[test]
    fn an_interface_without_addresses_has_no_statistics_or_address_list() {
        let v = describe(
            Interface { name: "ifb0".into(), mac: Some([0xa2, 0, 0, 0, 0, 1]), addresses: vec![] },
            PROC_NET_DEV,
        );
        let Value::Dict(d) = v else { panic!() };
        assert_eq!(d.get("hardware-address"), Some(&Value::str("a2:00:00:00:00:01")));
        assert!(d.get("ip-addresses").is_none() && d.get("statistics").is_none());
    }
}
