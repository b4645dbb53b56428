//! The `-D` writer: the config as a config file, the mirror image of `config_file.rs`.

use super::keyfile::Writer;
use super::table::{Value, CONFIG_KEYS};
use crate::config::Config;

/// The `-D` text: 7.2's keys in 7.2's order and spelling (`path` resolved to the method's
/// default, `block-rpcs` always present), then ours when set. Paths that are not UTF-8 are
/// shown lossily (a key file holds UTF-8 only).
pub fn dump(config: &Config) -> String {
    let mut w = Writer::new("general");
    for key in CONFIG_KEYS {
        match key.dump.and_then(|value| value(config)) {
            Some(Value::Boolean(b)) => w.boolean(key.name, b),
            Some(Value::String(s)) => w.string(key.name, &s),
            None => {}
        }
    }
    w.finish()
}
