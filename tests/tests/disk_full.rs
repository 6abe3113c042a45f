//! A full disk under a running node (RELIABILITY.md): its data directory on a small tmpfs that
//! a filler file then fills. The node refuses new transactions with `507 disk_full` (from its
//! RPC and from its peer), keeps serving reads, does not penalise the peer, stays up, and takes
//! writes again as soon as space is freed, catching up on what its peer took meanwhile.
//! Skipped, with a message, where this machine cannot mount a tmpfs (needs root).

use std::process::Command;
use std::time::{Duration, Instant};

use knoop_e2e::Node;
use serde_json::{json, Value};

/// A tmpfs of `mib` MiB at `dir`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(path: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

async fn publish(node: &Node, n: u32) -> (u16, Value) {
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("{{\"n\":{n}}}"));
    node.post(
        "/v1/publish",
        &json!({"content_type": "application/json", "payload": payload}),
    )
    .await
    .unwrap()
}

async fn transactions(node: &Node) -> u64 {
    node.status().await.unwrap()["transactions"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_serves_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = Tmpfs::mount(&dir.path().join("small-disk"), 256) else {
        eprintln!("skipping: this machine cannot mount a tmpfs");
        return;
    };
    let reserve = vec![("KNOOP_RESERVED_DISK_MIB".to_owned(), "32".to_owned())];
    let mut a = Node::start_with_env("a", &mnt.0.join("a"), &[], reserve.clone())
        .await
        .unwrap();
    let b = Node::start_with_env("b", &dir.path().join("b"), &[a.p2p.clone()], Vec::new())
        .await
        .unwrap();
    for i in 0..10 {
        let (code, v) = publish(&a, i).await;
        assert_eq!(code, 201, "{v}");
    }
    let t0 = Instant::now();
    while a.status().await.unwrap()["digest"] != b.status().await.unwrap()["digest"] {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "a and b never converged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = transactions(&a).await;

    // Fill the disk to 16 MiB free: under the 32 MiB reserve.
    let filler = mnt.0.join("filler");
    let fill = free_bytes(&mnt.0).saturating_sub(16 << 20);
    let f = std::fs::File::create(&filler).unwrap();
    std::io::Write::write_all(&mut &f, &vec![0u8; fill as usize]).unwrap();
    drop(f);
    assert!(free_bytes(&mnt.0) < 32 << 20);

    // Writes: refused with a clear error, not a server failure.
    let (code, v) = publish(&a, 100).await;
    assert_eq!(code, 507, "{v}");
    assert_eq!(v["error"], "disk_full", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("reserved_disk_mib"),
        "{v}"
    );
    let (code, v) = a.post("/v1/dids", &json!({})).await.unwrap();
    assert_eq!(code, 507, "creating a DID: {v}");
    // Reads go on.
    let status = a.status().await.unwrap();
    assert_eq!(status["transactions"], before);
    assert!(
        status["disk"]["free_bytes"].as_u64().unwrap() < 32 << 20,
        "{status}"
    );
    let (code, v) = a.get("/v1/transactions?limit=5").await.unwrap();
    assert_eq!(code, 200, "{v}");
    let (code, v) = a.get("/v1/node").await.unwrap();
    assert_eq!(code, 200, "{v}");
    let node_did = v["did"].as_str().unwrap().to_owned();
    let (code, v) = a.get(&format!("/v1/dids/{node_did}")).await.unwrap();
    assert_eq!(code, 200, "{v}");

    // The peer's new transactions are not taken either, and the peer is not punished for them.
    for i in 0..20 {
        let (code, v) = publish(&b, 200 + i).await;
        assert_eq!(code, 201, "{v}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(transactions(&a).await, before, "a stored past its reserve");
    let peers = a.status().await.unwrap()["peers"].as_u64().unwrap();
    assert_eq!(peers, 1, "a dropped its peer");
    assert!(a
        .pid()
        .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists()));

    // Space returns: writes resume without a restart, and a catches up with b.
    std::fs::remove_file(&filler).unwrap();
    let t0 = Instant::now();
    loop {
        let (code, v) = publish(&a, 300).await;
        if code == 201 {
            break;
        }
        assert_eq!(code, 507, "{v}");
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "writes never resumed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t0 = Instant::now();
    loop {
        let (sa, sb) = (a.status().await.unwrap(), b.status().await.unwrap());
        if sa["digest"] == sb["digest"] {
            assert_eq!(sa["transactions"].as_u64().unwrap(), before + 21);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "a never caught up: {} vs {}",
            sa["transactions"],
            sb["transactions"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.stop().await.unwrap();
    assert!(
        !a.log_text().contains("panicked"),
        "a panicked: {}",
        a.log_tail()
    );
}
