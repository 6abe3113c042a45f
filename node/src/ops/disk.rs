//! The space on the disk that holds the node's data directory (`statvfs`), for `/status` and
//! the console's warning of a disk nearly full.

use std::path::Path;

use serde::Serialize;

/// Bytes on the data directory's file system.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct DiskSpace {
    /// Available to the node (an unprivileged user).
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The space of the file system holding `path`; `None` when it cannot be asked.
pub fn space(path: &Path) -> Option<DiskSpace> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(DiskSpace {
        free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
        total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_dir_has_a_disk() {
        let d = space(&std::env::temp_dir()).expect("statvfs answers");
        assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes, "{d:?}");
        assert_eq!(space(Path::new("/no/such/dir")), None);
    }
}
