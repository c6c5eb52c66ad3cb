//! Every output a run will write, checked before the first step: not an input (the TOML, the
//! structure, the model), not another output, not a folder where a file goes (or a file where
//! a folder goes), and in a folder that exists or can be made and can be written. A mistake
//! here found after hours of steps would lose the run, or silently overwrite what the user had.

use std::path::{Component, Path, PathBuf};

/// One file or folder a run writes, with the key that names it.
pub struct Output {
    pub key: String,
    pub path: PathBuf,
    pub folder: bool,
}

impl Output {
    pub fn file(key: impl Into<String>, path: &Path) -> Output {
        Output { key: key.into(), path: path.to_path_buf(), folder: false }
    }

    pub fn folder(key: impl Into<String>, path: &Path) -> Output {
        Output { key: key.into(), path: path.to_path_buf(), folder: true }
    }
}

/// Checks `outputs` against each other and against `inputs` (key, path); creates the folders
/// they go in. The error names the output's key and path, and what it collides with.
pub fn check(outputs: &[Output], inputs: &[(String, PathBuf)]) -> Result<(), String> {
    let inputs: Vec<(&str, PathBuf)> = inputs.iter().map(|(k, p)| (k.as_str(), identity(p))).collect();
    let mut seen: Vec<(&str, PathBuf)> = Vec::new();
    for out in outputs {
        let id = identity(&out.path);
        let shown = out.path.display();
        if let Some((key, _)) = inputs.iter().find(|(_, p)| *p == id) {
            return Err(format!("{} = {shown} is the {key}: writing it would overwrite the input; choose another path", out.key));
        }
        if let Some((key, _)) = seen.iter().find(|(_, p)| *p == id) {
            return Err(format!("{} = {shown} is also {key}: two outputs would overwrite each other; give each its own path", out.key));
        }
        check_writable(out)?;
        seen.push((out.key.as_str(), id));
    }
    Ok(())
}

fn check_writable(out: &Output) -> Result<(), String> {
    let shown = out.path.display();
    if out.path.is_dir() && !out.folder {
        return Err(format!("{} = {shown} is a folder; give a file path", out.key));
    }
    if out.path.exists() && !out.path.is_dir() && out.folder {
        return Err(format!("{} = {shown} is a file; give a folder path", out.key));
    }
    let folder = if out.folder { out.path.as_path() } else { out.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")) };
    std::fs::create_dir_all(folder).map_err(|e| format!("{} = {shown}: cannot create the folder {}: {e}", out.key, folder.display()))?;
    let target = if out.path.exists() { out.path.as_path() } else { folder };
    if !writable(target) {
        return Err(format!("{} = {shown}: {} is not writable", out.key, target.display()));
    }
    Ok(())
}

#[cfg(unix)]
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(path: &Path) -> bool {
    !std::fs::metadata(path).map(|m| m.permissions().readonly()).unwrap_or(false)
}

/// The path as the file system resolves it: the longest existing ancestor canonicalised (links
/// followed), the rest appended with `.` and `..` resolved.
pub fn identity(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    loop {
        if let Ok(real) = base.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mdrun-outputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_output_that_is_an_input_or_another_output_is_refused() {
        let d = dir("collide");
        std::fs::write(d.join("water.xyz"), "x").unwrap();
        let inputs = vec![("structure file".to_string(), d.join("water.xyz"))];
        let err = check(&[Output::file("[output] log", &d.join("sub/../water.xyz"))], &inputs).unwrap_err();
        assert!(err.contains("is the structure file"), "{err}");
        let err = check(&[Output::file("[output] log", &d.join("a.log")), Output::file("[[output.trajectory]] path", &d.join("./a.log"))], &inputs).unwrap_err();
        assert!(err.contains("is also [output] log"), "{err}");
        check(&[Output::file("[output] log", &d.join("out/a.log")), Output::folder("[analysis] out", &d.join("out/analysis"))], &inputs).unwrap();
    }

    #[test]
    fn a_folder_where_a_file_goes_is_refused() {
        let d = dir("folder");
        std::fs::create_dir_all(d.join("final.chk")).unwrap();
        let err = check(&[Output::file("[output] checkpoint", &d.join("final.chk"))], &[]).unwrap_err();
        assert!(err.contains("is a folder"), "{err}");
    }
}

/// `out/state.chk` + "last-good" → `out/state.last-good.chk`.
pub fn sibling(path: &Path, tag: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{tag}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{tag}"),
    };
    path.with_file_name(name)
}
