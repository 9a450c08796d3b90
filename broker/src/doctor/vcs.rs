//! Is a file under version control? Asked of git itself (`git ls-files
//! --error-unmatch`, `git check-ignore`), after looking for a `.git` entry
//! above the file so that files outside any work tree never spawn git.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a file stands with git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vcs {
    /// Not inside any git work tree.
    Outside,
    /// Tracked: its content is (or will be, once committed) in the repository.
    Tracked {
        /// The work tree's root.
        root: PathBuf,
    },
    /// In a work tree, not tracked; `ignored` when .gitignore covers it.
    Untracked {
        /// The work tree's root.
        root: PathBuf,
        /// Whether git ignores it.
        ignored: bool,
    },
    /// In a work tree, but git could not say (not installed, refused the repository...).
    Unknown {
        /// The work tree's root.
        root: PathBuf,
        /// Why git could not tell.
        reason: String,
    },
}

/// The nearest directory at or above `dir` holding a `.git` entry (a
/// directory, or a file for worktrees and submodules).
fn work_tree(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Runs `git -C dir args...`; `Ok(true)` on exit 0, `Ok(false)` on exit 1.
fn git(dir: &Path, args: &[&str]) -> Result<bool, String> {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|err| format!("cannot run git: {err}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        other => Err(format!("git exited with {other:?}")),
    }
}

/// Where `path` stands with git.
pub fn status(path: &Path) -> Vcs {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Vcs::Outside;
    };
    let Some(root) = work_tree(dir) else {
        return Vcs::Outside;
    };
    let Some(name) = name.to_str() else {
        return Vcs::Unknown {
            root,
            reason: "the file name is not UTF-8".into(),
        };
    };
    match git(dir, &["ls-files", "--error-unmatch", "--", name]) {
        Ok(true) => Vcs::Tracked { root },
        Ok(false) => match git(dir, &["check-ignore", "-q", "--", name]) {
            Ok(ignored) => Vcs::Untracked { root, ignored },
            Err(reason) => Vcs::Unknown { root, reason },
        },
        Err(reason) => Vcs::Unknown { root, reason },
    }
}
