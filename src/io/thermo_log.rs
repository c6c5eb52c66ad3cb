//! The thermo log: a plain-text table, one row per thermo step, that numpy, pandas and
//! `mdrun analyze` read (`#` lines are comments; the first non-comment line names the columns).
//! Each row is flushed as it is written, so the log is complete up to the last reported step
//! even if the run dies.

use crate::thermo::ThermoSample;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct ThermoLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ThermoLog {
    /// Creates the log (or appends to it, for a restarted run) and writes the header (the
    /// column names of rows like `first`).
    pub fn open(path: &Path, append: bool, preamble: &[String], first: &ThermoSample) -> std::io::Result<ThermoLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let existed = path.exists();
        let file = if append {
            OpenOptions::new().create(true).append(true).open(path)?
        } else {
            File::create(path)?
        };
        let mut log = ThermoLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        };
        for line in preamble {
            writeln!(log.out, "# {line}")?;
        }
        if !(append && existed) {
            writeln!(log.out, "{}", first.header())?;
        }
        log.out.flush()?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, sample: &ThermoSample) -> std::io::Result<()> {
        writeln!(self.out, "{}", sample.line())?;
        self.out.flush()
    }

    pub fn comment(&mut self, text: &str) -> std::io::Result<()> {
        // Every line a comment, so that readers of the table skip them all.
        for line in text.lines() {
            writeln!(self.out, "# {line}")?;
        }
        self.out.flush()
    }
}
