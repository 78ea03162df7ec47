//! `worker.json` parsing and validation, good and hostile.

use super::*;
use pictor_test_support::hostile;

const GOOD: &str = r#"{
    "version": 1,
    "worker": {"id": "wkr-7f3a9c", "name": "studio rig 1"},
    "wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "coordinator": {"spool": "spool"},
    "mining": {"enabled": true, "pool": "stratum+tcp://pool.example:3333", "coin": "btc", "plugin": "plugins/mine.wasm", "require_nvidia": false},
    "limits": {"job_kinds": ["render", "upscale"], "jobs_per_gpu": 1, "job": {"timeout_s": 600}},
    "prices": {"render": 0.02},
    "gpu": "auto"
}"#;

fn check(text: &str) -> Result<WorkerConfig, String> {
    WorkerConfig::validate(
        parse(text).map_err(|e| e.to_string())?,
        Path::new("/etc/pictor"),
        Path::new("/etc/pictor/worker.json"),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn good_config_resolves_paths_and_defaults() -> Result<(), String> {
    let c = check(GOOD)?;
    assert_eq!(
        c.source,
        JobSource::Spool(PathBuf::from("/etc/pictor/spool"))
    );
    let m = c.mining.ok_or("mining")?;
    assert_eq!(
        (m.pool_host.as_str(), m.pool_port, m.algorithm),
        ("pool.example", 3333, "sha256d")
    );
    assert_eq!(m.wallet, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4");
    assert_eq!(
        m.plugin,
        Some(PathBuf::from("/etc/pictor/plugins/mine.wasm"))
    );
    assert_eq!(m.idle_delay, std::time::Duration::from_secs(30));
    assert_eq!(c.jobs_per_gpu, 1);
    assert_eq!(c.gpus, vec![AdapterChoice::Auto]);
    let two = check(&GOOD.replace(r#""gpu": "auto""#, r#""gpu": ["0", "H100"]"#))?;
    assert_eq!(
        two.gpus,
        vec![AdapterChoice::Index(0), AdapterChoice::Name("H100".into())]
    );
    Ok(())
}

#[test]
fn a_coordinator_gets_a_working_folder_beside_the_config() -> Result<(), String> {
    let token = r#""url": "https://c.example", "token": "0123456789abcdef0123""#;
    let c = check(&GOOD.replace(r#""spool": "spool""#, token))?;
    let url = url::Url::parse("https://c.example").map_err(|e| e.to_string())?;
    let expected = JobSource::Coordinator {
        url: url.clone(),
        token: "0123456789abcdef0123".into(),
        spool: "/etc/pictor/worker-data".into(),
    };
    assert_eq!(c.source, expected);
    let c = check(&GOOD.replace(
        r#""spool": "spool""#,
        &format!(r#""spool": "/var/lib/pictor", {token}"#),
    ))?;
    assert_eq!(c.source.spool(), Path::new("/var/lib/pictor"));
    Ok(())
}

#[test]
fn the_status_page_listens_on_loopback_only() -> Result<(), String> {
    assert_eq!(check(GOOD)?.status_listen, None, "off unless asked for");
    let on = |listen: &str| {
        check(&GOOD.replace(
            r#""gpu": "auto""#,
            &format!(r#""gpu": "auto", "status": {{"listen": "{listen}"}}"#),
        ))
    };
    assert_eq!(
        on("127.0.0.1:9187")?.status_listen,
        Some("127.0.0.1:9187".parse().map_err(|_| "addr")?)
    );
    assert_eq!(
        on("127.0.0.2:0")?.status_listen,
        Some("127.0.0.2:0".parse().map_err(|_| "addr")?)
    );
    assert_eq!(
        on("[::1]:9187")?.status_listen,
        Some("[::1]:9187".parse().map_err(|_| "addr")?)
    );
    assert_eq!(
        on("localhost:9187")?.status_listen,
        Some("127.0.0.1:9187".parse().map_err(|_| "addr")?)
    );
    for refused in ["[::]:9187", "10.0.0.1:9187", "[::ffff:10.0.0.1]:1"] {
        assert!(
            on(refused)
                .unwrap_err()
                .contains("is not a loopback address"),
            "{refused}"
        );
    }
    assert!(
        status_listen("--status-listen", "0.0.0.0:1")
            .unwrap_err()
            .to_string()
            .starts_with("`--status-listen` \"0.0.0.0:1\" is not a loopback")
    );
    Ok(())
}

#[test]
fn the_miner_may_come_from_the_coordinator_by_digest() -> Result<(), String> {
    let digest = "ab".repeat(32);
    let coordinator = r#""url": "https://c.example", "token": "0123456789abcdef0123""#;
    let by_digest = GOOD.replace(
        r#""plugin": "plugins/mine.wasm""#,
        &format!(r#""plugin_sha256": "{digest}""#),
    );
    let c = check(&by_digest.replace(r#""spool": "spool""#, coordinator))?;
    let m = c.mining.ok_or("mining")?;
    assert_eq!(
        (m.plugin, m.plugin_sha256.map(|d| d.to_string())),
        (None, Some(digest.clone()))
    );
    // Without a coordinator there is nowhere to download it from.
    assert!(
        check(&by_digest)
            .unwrap_err()
            .contains("there is no `coordinator.url`")
    );
    // Both given: the path wins (the digest is kept, unused).
    let both = GOOD.replace(
        r#""plugin": "plugins/mine.wasm""#,
        &format!(r#""plugin": "plugins/mine.wasm", "plugin_sha256": "{digest}""#),
    );
    assert_eq!(
        check(&both)?.mining.ok_or("mining")?.plugin,
        Some(PathBuf::from("/etc/pictor/plugins/mine.wasm"))
    );
    Ok(())
}

#[test]
fn each_bad_field_names_its_key_and_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (r#""version": 1,"#, r#""version": 2,"#, "`version` is 2"),
        (
            r#""mining": {"#,
            r#""minig": {"#,
            "unknown field `minig`, expected one of",
        ),
        (r#""mining": {"#, r#""minig": {"#, "did you mean `mining`?"),
        (r#""id": "wkr-7f3a9c""#, r#""id": "a b""#, "`worker.id`"),
        (
            r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4""#,
            r#""wallet": "x""#,
            "`wallet` \"x\" is not a wallet address",
        ),
        (
            r#""pool": "stratum+tcp://pool.example:3333""#,
            r#""pool": "http://pool.example:3333""#,
            "must start with stratum+tcp://",
        ),
        (
            r#""pool": "stratum+tcp://pool.example:3333""#,
            r#""pool": "stratum+tcp://pool.example""#,
            "has no port",
        ),
        (
            r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4""#,
            r#""wallet": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5""#,
            "`mining.wallet` \"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5\" is not a btc address: not a valid segwit address",
        ),
        (
            r#""pool": "stratum+tcp://pool.example:3333""#,
            r#""pool": "stratum+tcp://pool.example:3333/path""#,
            "no path, user or spaces",
        ),
        (
            r#""coin": "btc""#,
            r#""coin": "xmr""#,
            "`mining.coin` \"xmr\" is not supported; this host mines btc, bch",
        ),
        (
            r#""jobs_per_gpu": 1"#,
            r#""jobs_per_gpu": 0"#,
            "`limits.jobs_per_gpu`",
        ),
        (
            r#""timeout_s": 600"#,
            r#""timeout_s": -1"#,
            "`limits.job`: timeout_s",
        ),
        (
            r#""render": 0.02"#,
            r#""render": -1"#,
            "`prices.render` must be a number",
        ),
        (
            r#""spool": "spool""#,
            r#""url": "ftp://x""#,
            "`coordinator.url` \"ftp://x\" must be an http",
        ),
        (
            r#""spool": "spool""#,
            r#""url": "https://c.example""#,
            "`coordinator.token` is missing",
        ),
        (
            r#""job_kinds": ["render", "upscale"]"#,
            r#""job_kinds": ["Render"]"#,
            "`limits.job_kinds`",
        ),
        (
            r#""jobs_per_gpu": 1"#,
            r#""jobs_per_gpu": "one""#,
            "`limits.jobs_per_gpu`: invalid type",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": ["0", "0"]"#,
            "`gpu` lists the same adapter twice",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": ["auto", "1"]"#,
            "use \"auto\" or \"none\" alone",
        ),
        (
            r#""plugin": "plugins/mine.wasm""#,
            r#""plugin_sha256": "abc""#,
            "`mining.plugin_sha256` \"abc\" is not a sha256",
        ),
        (
            r#""plugin": "plugins/mine.wasm", "#,
            "",
            "give `mining.plugin` (the mining component, e.g. plugins/mine.wasm) or `mining.plugin_sha256`",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": "auto", "status": {"listen": "0.0.0.0:9187"}"#,
            "`status.listen` \"0.0.0.0:9187\" is not a loopback address: the status page is for the owner's machine only",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": "auto", "status": {"listen": "192.168.1.5:80"}"#,
            "use an SSH tunnel",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": "auto", "status": {"listen": "127.0.0.1"}"#,
            "`status.listen` \"127.0.0.1\" is not an address and port",
        ),
        (
            r#""gpu": "auto""#,
            r#""gpu": "auto", "status": {"listn": "127.0.0.1:1"}"#,
            "did you mean `listen`?",
        ),
    ];
    for (from, to, expected) in cases {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "case {to} did not change the config");
        let err = check(&text).expect_err(to);
        assert!(err.contains(expected), "{to}: {err}");
    }
}

/// Fields of `GOOD` (and ones it lacks) a hostile config may change.
const CONFIG_FIELDS: &[&str] = &[
    "version",
    "worker",
    "worker/id",
    "worker/name",
    "wallet",
    "coordinator",
    "coordinator/spool",
    "coordinator/url",
    "coordinator/token",
    "mining",
    "mining/enabled",
    "mining/pool",
    "mining/coin",
    "mining/wallet",
    "mining/plugin",
    "mining/plugin_sha256",
    "mining/idle_delay_s",
    "mining/require_nvidia",
    "mining/allow_private_pool",
    "limits",
    "limits/job_kinds",
    "limits/job_kinds/0",
    "limits/jobs_per_gpu",
    "limits/cache_mib",
    "limits/spool_mib",
    "limits/job",
    "limits/job/timeout_s",
    "limits/job/memory_mib",
    "limits/job/output_mib",
    "limits/job/open_files",
    "limits/job/gpu_memory_mib",
    "prices",
    "prices/render",
    "gpu",
    "gpu/0",
    "status",
    "status/listen",
    "unknown_key",
];

proptest::proptest! {
    #![proptest_config(hostile::config())]

    #[test]
    fn a_hostile_worker_json_is_refused_readably_never_a_panic((path, value) in hostile::mutation(CONFIG_FIELDS)) {
        let good: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let text = hostile::with_field(&good, path, value).to_string();
        if let Err(error) = check(&text) {
            hostile::assert_readable(&error);
        }
    }

    #[test]
    fn any_bytes_as_worker_json_are_refused_readably(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        if let Err(error) = check(&String::from_utf8_lossy(&bytes)) {
            hostile::assert_readable(&error);
        }
    }
}

#[test]
fn a_worker_json_nested_100000_deep_is_refused_not_a_stack_overflow() {
    let error = check(&hostile::deeply_nested(100_000))
        .err()
        .unwrap_or_default();
    hostile::assert_readable(&error);
    let text = GOOD.replace(
        r#""gpu": "auto""#,
        &format!(r#""gpu": {}"#, hostile::deeply_nested(100_000)),
    );
    hostile::assert_readable(&check(&text).err().unwrap_or_default());
}
