//! Bundles as files: IntelMQ JSON lines, the `scan_exchange` CSV and the e-mail per bundle, and
//! a manifest that lists them. Each file is written whole or not at all (temp file, rename).

use std::path::Path;

use serde_json::{json, Value};

use crate::plan::Plan;
use crate::render::Rendered;
use crate::{intelmq, NotifyError};

/// The files of one bundle, by format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleFiles {
    pub intelmq: String,
    pub scan_exchange: String,
    pub email: String,
}

/// Writes one bundle's files into `dir` (created if missing) and returns their names.
pub fn write_bundle(dir: &Path, r: &Rendered) -> Result<BundleFiles, NotifyError> {
    let files = BundleFiles {
        intelmq: format!("{}.intelmq.jsonl", r.bundle.id),
        scan_exchange: r.csv_file_name(),
        email: format!(
            "{}.{}.eml.txt",
            r.bundle.id,
            r.bundle.recipient.language.as_str()
        ),
    };
    let email = format!("Subject: {}\n\n{}", r.email.subject, r.email.body);
    write_files(
        dir,
        &[
            (&files.intelmq, intelmq::to_jsonl(&r.events).as_bytes()),
            (&files.scan_exchange, r.csv.as_bytes()),
            (&files.email, email.as_bytes()),
        ],
    )?;
    Ok(files)
}

/// Writes every bundle and `manifest.json`, last, so that a manifest names only files that
/// exist.
pub fn write_plan(dir: &Path, plan: &Plan, rendered: &[Rendered]) -> Result<Value, NotifyError> {
    let mut bundles = Vec::new();
    for r in rendered {
        let files = write_bundle(dir, r)?;
        bundles.push(json!({
            "id": r.bundle.id,
            "recipient": r.bundle.recipient,
            "language": r.bundle.recipient.language,
            "findings": r.bundle.findings.len(),
            "reminders": r.bundle.findings.iter().filter(|f| f.reminder).count(),
            "subject": r.email.subject,
            "files": files,
        }));
    }
    let manifest = json!({
        "scan": plan.scan.0,
        "as_of": plan.as_of.to_string(),
        "bundles": bundles,
        "unrouted": plan.unrouted.iter().map(|(ip, port)| json!({"ip": ip, "port": port})).collect::<Vec<_>>(),
        "suppressed": plan.suppressed,
        "within_window": plan.within_window,
    });
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| NotifyError::Io(format!("cannot write the manifest: {e}")))?;
    write_files(dir, &[("manifest.json", (text + "\n").as_bytes())])?;
    Ok(manifest)
}

pub(crate) fn write_files(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), NotifyError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| NotifyError::Io(format!("cannot create {}: {e}", dir.display())))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| NotifyError::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
