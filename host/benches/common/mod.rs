//! Helpers shared by the benchmarks.

use std::path::Path;
use std::process::Command;

/// The plugin folder: `PICTOR_PLUGINS_DIR` if set (prebuilt components, for
/// machines without the guest toolchain), else freshly built ones.
pub fn pictor_plugins(root: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::var_os("PICTOR_PLUGINS_DIR") {
        return Ok(dir.into());
    }
    if !Command::new("bash").arg(root.join("scripts/build-plugins.sh")).status()?.success() {
        return Err("building the plugins failed".into());
    }
    Ok(root.join("target/plugins"))
}
