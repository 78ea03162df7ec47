//! `pictor-host plugin new`: a ready plugin project outside this
//! repository, in Rust, Python or JavaScript. Every project gets Pictor's
//! WIT (with the WASI packages the host links), a sample job with its
//! input and expected output, `build.sh`, `test.sh` and a README; the
//! templates are built into the binary (`host/templates/`, and the
//! Python and JavaScript examples of `examples/`), so the project needs
//! nothing from this checkout. A Rust project carries a copy of
//! `pictor-sdk` until the SDK is published.

use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `pictor-sdk`, built for `wasm32-wasip2`.
    Rust,
    /// componentize-py.
    Python,
    /// componentize-qjs (QuickJS).
    JavaScript,
}

/// Why a project could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not usable as a job kind, a crate and a WIT name.
    #[error(
        "plugin name `{name}` is not valid: use 1-40 characters, lowercase words of a-z and 0-9 \
         joined by `-`, each starting with a letter (e.g. `upscale-x2`)"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The folder exists and holds something.
    #[error("{} already exists and is not empty: choose a new folder with --into", .0.display())]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// Longest plugin name accepted.
pub const MAX_NAME_CHARS: usize = 40;

/// Whether `name` works as a job kind, a Rust crate, a WIT package name and
/// a file name: kebab-case words of `a-z0-9`, each starting with a letter.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.split('-').all(|word| {
            word.starts_with(|c: char| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// One file of a project: its path in the project and its text, with
/// `{{name}}` and `{{crate}}` still to fill in.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

const fn file(path: &'static str, text: &'static str) -> Template {
    Template {
        path,
        text,
        executable: false,
    }
}

const fn script(path: &'static str, text: &'static str) -> Template {
    Template {
        path,
        text,
        executable: true,
    }
}

/// What every project gets: the WIT, the sample job, the test, a README.
const COMMON: &[Template] = &[
    file("wit/types.wit", include_str!("../../wit/types.wit")),
    file("wit/progress.wit", include_str!("../../wit/progress.wit")),
    file(
        "wit/checkpoint.wit",
        include_str!("../../wit/checkpoint.wit"),
    ),
    file("wit/gpu.wit", include_str!("../../wit/gpu.wit")),
    file("wit/mining.wit", include_str!("../../wit/mining.wit")),
    file("wit/worlds.wit", include_str!("../../wit/worlds.wit")),
    file("wit/deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    file(
        "wit/deps/clocks.wit",
        include_str!("../../wit/deps/clocks.wit"),
    ),
    file(
        "wit/deps/filesystem.wit",
        include_str!("../../wit/deps/filesystem.wit"),
    ),
    file("wit/deps/io.wit", include_str!("../../wit/deps/io.wit")),
    file(
        "wit/deps/random.wit",
        include_str!("../../wit/deps/random.wit"),
    ),
    file(
        "wit/deps/sockets.wit",
        include_str!("../../wit/deps/sockets.wit"),
    ),
    file("job.json", include_str!("../templates/common/job.json")),
    file(
        "input/values.txt",
        include_str!("../templates/common/values.txt"),
    ),
    file(
        "expected/values.txt",
        include_str!("../templates/common/expected.txt"),
    ),
    script("test.sh", include_str!("../templates/common/test.sh")),
    file(".gitignore", include_str!("../templates/common/gitignore")),
];

const RUST: &[Template] = &[
    file("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    file("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    script("build.sh", include_str!("../templates/rust/build.sh")),
    file("pictor-sdk/Cargo.toml", SDK_MANIFEST),
    file(
        "pictor-sdk/src/lib.rs",
        include_str!("../../sdk-guest/src/lib.rs"),
    ),
    file(
        "pictor-sdk/src/__private.rs",
        include_str!("../../sdk-guest/src/__private.rs"),
    ),
    file(
        "pictor-sdk/src/error.rs",
        include_str!("../../sdk-guest/src/error.rs"),
    ),
    file(
        "pictor-sdk/src/files.rs",
        include_str!("../../sdk-guest/src/files.rs"),
    ),
    file(
        "pictor-sdk/src/gpu.rs",
        include_str!("../../sdk-guest/src/gpu.rs"),
    ),
    file(
        "pictor-sdk/src/host.rs",
        include_str!("../../sdk-guest/src/host.rs"),
    ),
    file(
        "pictor-sdk/src/job.rs",
        include_str!("../../sdk-guest/src/job.rs"),
    ),
    file(
        "pictor-sdk/src/mining.rs",
        include_str!("../../sdk-guest/src/mining.rs"),
    ),
    file(
        "pictor-sdk/src/testing.rs",
        include_str!("../../sdk-guest/src/testing.rs"),
    ),
];

/// `sdk-guest/Cargo.toml` with the workspace's settings written out (a
/// test holds the two together).
const SDK_MANIFEST: &str = r#"[package]
name = "pictor-sdk"
description = "Write Pictor job plugins in Rust: one trait impl, one export macro."
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["float_roundtrip"] }
bytemuck = { version = "1", features = ["derive", "extern_crate_alloc"] }

[target.'cfg(target_arch = "wasm32")'.dependencies]
wit-bindgen = { version = "0.61", default-features = false, features = ["macros", "realloc", "bitflags"] }

[dev-dependencies]
tempfile = "3"
"#;

const PYTHON: &[Template] = &[
    file("app.py", include_str!("../../examples/python/app.py")),
    file(
        "requirements.txt",
        include_str!("../../examples/python/requirements.txt"),
    ),
    script("build.sh", include_str!("../templates/python/build.sh")),
];

const JAVASCRIPT: &[Template] = &[
    file("app.js", include_str!("../../examples/js/app.js")),
    file(
        "package.json",
        include_str!("../../examples/js/package.json"),
    ),
    script("build.sh", include_str!("../templates/js/build.sh")),
];

const README: &str = include_str!("../templates/common/README.md");

impl Language {
    fn templates(self) -> &'static [Template] {
        match self {
            Language::Rust => RUST,
            Language::Python => PYTHON,
            Language::JavaScript => JAVASCRIPT,
        }
    }

    /// The example's own name in its sources, replaced by the new name.
    fn example_name(self) -> Option<&'static str> {
        match self {
            Language::Rust => None,
            Language::Python => Some("py-scale"),
            Language::JavaScript => Some("js-scale"),
        }
    }

    fn readme_parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Language::Rust => (
                "Rust",
                "src/lib.rs",
                "\nThe build uses rustup's `wasm32-wasip2` target when it is installed\n\
                 (`rustup target add wasm32-wasip2`; no cargo-component needed: the target\n\
                 links components itself), else Debian 12's `rustc-web` with std built\n\
                 from source.\n\
                 `cargo test` runs the plugin's logic natively. `pictor-sdk/` is a copy of\n\
                 the SDK (with `pictor_sdk::testing::TestHost` for native tests).\n",
            ),
            Language::Python => (
                "Python",
                "app.py",
                "\nThe build installs componentize-py (pinned in `requirements.txt`) into\n\
                 `./venv` on first use. `componentize-py -d wit -w job bindings DIR` writes\n\
                 the typed bindings for an editor.\n",
            ),
            Language::JavaScript => (
                "JavaScript",
                "app.js",
                "\nThe build installs componentize-qjs (pinned in `package.json`) into\n\
                 `./node_modules` on first use. QuickJS has no `fs`, `console` or\n\
                 `TextEncoder`: `app.js` calls `wasi:filesystem` and `wasi:cli/stdout`\n\
                 itself (the job world includes WASI's `wasi:cli/imports`).\n",
            ),
        }
    }
}

fn fill(text: &str, name: &str, example: Option<&str>) -> String {
    let mut text = text
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"));
    if let Some(example) = example {
        text = text.replace(example, name);
    }
    text
}

/// Writes a new `language` project for a plugin called `name` into `dir`
/// (created; it must not exist or be empty). Returns the files written.
pub fn create(dir: &Path, name: &str, language: Language) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName {
            name: pictor_protocol::text::one_line(name, 80),
        });
    }
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || dir.is_file() {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let mut written = Vec::new();
    for template in COMMON.iter().chain(language.templates()) {
        let path = dir.join(template.path);
        write(
            &path,
            &fill(template.text, name, language.example_name()),
            template.executable,
        )?;
        written.push(path);
    }
    let (language_name, source, toolchain) = language.readme_parts();
    let readme = README
        .replace("{{language}}", language_name)
        .replace("{{source}}", source)
        .replace("{{toolchain}}", toolchain)
        .replace("{{wit_version}}", pictor_runtime::PLUGIN_WIT_VERSION);
    let path = dir.join("README.md");
    write(&path, &fill(&readme, name, None), false)?;
    written.push(path);
    Ok(written)
}

fn write(path: &Path, text: &str, executable: bool) -> Result<(), ScaffoldError> {
    let failed = |source| ScaffoldError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, text).map_err(failed)?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_words_starting_with_a_letter() {
        for good in ["scale", "upscale-x2", "a", "my-job2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Scale",
            "my_job",
            "-a",
            "a-",
            "a--b",
            "2x",
            "a-2x",
            "a b",
            "../x",
            "é",
            &"a".repeat(MAX_NAME_CHARS + 1),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn every_language_fills_every_placeholder() -> Result<(), Box<dyn std::error::Error>> {
        for language in [Language::Rust, Language::Python, Language::JavaScript] {
            let dir = tempfile::tempdir()?;
            let project = dir.path().join("p");
            let files = create(&project, "my-job", language)?;
            for path in &files {
                let text = std::fs::read_to_string(path)?;
                assert!(
                    !text.contains("{{"),
                    "{} keeps a placeholder",
                    path.display()
                );
                for example in ["py-scale", "js-scale"] {
                    assert!(
                        !text.contains(example),
                        "{} names {example}",
                        path.display()
                    );
                }
            }
            let job: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(project.join("job.json"))?)?;
            assert_eq!(job["kind"], "my-job");
            let readme = std::fs::read_to_string(project.join("README.md"))?;
            assert!(readme.contains("bash build.sh") && readme.contains("my-job.wasm"));
        }
        Ok(())
    }

    #[test]
    fn an_occupied_folder_or_a_bad_name_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("keep.txt"), "mine")?;
        let err = create(dir.path(), "x", Language::Rust).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1, "nothing written");
        let err = create(&dir.path().join("n"), "Bad\u{1b}[2J", Language::Rust)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Bad\\u{1b}[2J` is not valid"), "{err}");
        Ok(())
    }

    /// Every file of the WIT package is in every project.
    #[test]
    fn every_project_has_every_wit_file() -> Result<(), Box<dyn std::error::Error>> {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        for folder in [wit.clone(), wit.join("deps")] {
            for entry in std::fs::read_dir(&folder)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "wit") {
                    let relative = path.strip_prefix(&wit)?.to_string_lossy().into_owned();
                    let vendored = format!("wit/{relative}");
                    assert!(
                        COMMON.iter().any(|t| t.path == vendored),
                        "{vendored} is not in scaffold::COMMON"
                    );
                }
            }
        }
        Ok(())
    }

    /// Every source file of the SDK is in the copy a Rust project gets.
    #[test]
    fn the_vendored_sdk_has_every_source_file() -> Result<(), Box<dyn std::error::Error>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-guest/src");
        for entry in std::fs::read_dir(src)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let vendored = format!("pictor-sdk/src/{name}");
            assert!(
                RUST.iter().any(|t| t.path == vendored),
                "sdk-guest/src/{name} is not in scaffold::RUST"
            );
        }
        Ok(())
    }

    /// The copy of the SDK's manifest uses the workspace's settings.
    #[test]
    fn the_vendored_sdk_manifest_matches_the_workspace() {
        let workspace = include_str!("../../Cargo.toml");
        let line = |key: &str| {
            workspace
                .lines()
                .find(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("no {key} in the workspace"))
        };
        for key in [
            "serde",
            "serde_json",
            "bytemuck",
            "wit-bindgen",
            "tempfile",
            "version",
            "edition",
            "license",
        ] {
            assert!(SDK_MANIFEST.contains(line(key)), "{key}: {}", line(key));
        }
        let sdk = include_str!("../../sdk-guest/Cargo.toml");
        for dependency in [
            "serde.workspace",
            "serde_json.workspace",
            "bytemuck.workspace",
            "wit-bindgen.workspace",
            "tempfile.workspace",
        ] {
            assert!(
                sdk.contains(dependency),
                "sdk-guest lost {dependency}: update SDK_MANIFEST"
            );
        }
        assert_eq!(
            sdk.matches(".workspace = true").count(),
            11,
            "a new workspace key in sdk-guest/Cargo.toml: copy it to SDK_MANIFEST"
        );
    }
}
