//! A streaming reader for plain DCD trajectories (CHARMM/NAMD/LAMMPS/chemfiles: f32 x, y, z
//! records per frame, optionally a unit-cell record, either byte order). chemfiles reads DCD too,
//! but builds a full frame with an atom object per atom every time; for analysis of long
//! trajectories this reader hands over the coordinates alone, several times faster. Files it
//! does not handle (fixed atoms, 4D coordinates, odd record sizes) return None from `open`, and
//! the caller falls back to chemfiles.

use crate::cell::Vec3;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

pub struct DcdReader {
    file: BufReader<std::fs::File>,
    atoms: usize,
    frames: usize,
    has_cell: bool,
    big_endian: bool,
    buffer: Vec<u8>,
}

impl DcdReader {
    /// The reader, or None when the file is not a DCD this reader handles.
    pub fn open(path: &Path) -> std::io::Result<Option<DcdReader>> {
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        let mut head = [0u8; 92];
        if file.read_exact(&mut head).is_err() || &head[4..8] != b"CORD" {
            return Ok(None);
        }
        let big_endian = match (i32::from_le_bytes(head[0..4].try_into().unwrap()), i32::from_be_bytes(head[0..4].try_into().unwrap())) {
            (84, _) => false,
            (_, 84) => true,
            _ => return Ok(None),
        };
        let int = |b: &[u8]| -> i64 {
            let a: [u8; 4] = b[..4].try_into().unwrap();
            (if big_endian { i32::from_be_bytes(a) } else { i32::from_le_bytes(a) }) as i64
        };
        // icntrl[0..20] after "CORD": [8] fixed atoms, [10] unit cell present, [11] 4D.
        let control: Vec<i64> = (0..20).map(|k| int(&head[8 + 4 * k..])).collect();
        let charmm = control[19] != 0;
        if int(&head[88..]) != 84 || control[8] != 0 || (charmm && control[11] != 0) {
            return Ok(None);
        }
        let has_cell = charmm && control[10] != 0;
        // Title record, then the atom count.
        let mut word = [0u8; 4];
        file.read_exact(&mut word)?;
        let title = int(&word);
        if title < 4 {
            return Ok(None);
        }
        file.seek(SeekFrom::Current(title + 4))?;
        let mut atoms_record = [0u8; 12];
        file.read_exact(&mut atoms_record)?;
        if int(&atoms_record[0..]) != 4 || int(&atoms_record[8..]) != 4 {
            return Ok(None);
        }
        let atoms = int(&atoms_record[4..]);
        if atoms <= 0 {
            return Ok(None);
        }
        let atoms = atoms as usize;
        let header = file.stream_position()?;
        let frame_bytes = (if has_cell { 56 } else { 0 }) + 3 * (8 + 4 * atoms as u64);
        // The header's frame count is not always kept up to date: count by size, as chemfiles.
        let frames = ((size - header) / frame_bytes) as usize;
        Ok(Some(DcdReader { file: BufReader::with_capacity(1 << 20, file), atoms, frames, has_cell, big_endian, buffer: Vec::new() }))
    }

    pub fn atoms(&self) -> usize {
        self.atoms
    }

    pub fn frames(&self) -> usize {
        self.frames
    }

    fn record(&mut self, bytes: usize) -> Result<(), String> {
        let mut word = [0u8; 4];
        let mut marker = |file: &mut BufReader<std::fs::File>| -> Result<i64, String> {
            file.read_exact(&mut word).map_err(|e| format!("truncated: {e}"))?;
            Ok((if self.big_endian { i32::from_be_bytes(word) } else { i32::from_le_bytes(word) }) as i64)
        };
        let start = marker(&mut self.file)?;
        if start != bytes as i64 {
            return Err(format!("a record of {start} bytes where {bytes} were expected"));
        }
        self.buffer.resize(bytes, 0);
        self.file.read_exact(&mut self.buffer).map_err(|e| format!("truncated: {e}"))?;
        let end = marker(&mut self.file)?;
        if end != bytes as i64 {
            return Err(format!("a record closed by {end} where {bytes} was expected"));
        }
        Ok(())
    }

    /// Reads the next frame's positions (Å) into `positions`; returns the unit-cell record as
    /// the file has it ([a, γ, b, β, α, c], angles in degrees or as cosines), if any.
    pub fn read(&mut self, positions: &mut Vec<Vec3>) -> Result<Option<[f64; 6]>, String> {
        let cell = if self.has_cell {
            self.record(48)?;
            let big = self.big_endian;
            Some(std::array::from_fn(|k| {
                let b: [u8; 8] = self.buffer[8 * k..8 * k + 8].try_into().unwrap();
                if big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) }
            }))
        } else {
            None
        };
        positions.resize(self.atoms, [0.0; 3]);
        for axis in 0..3 {
            self.record(4 * self.atoms)?;
            let big = self.big_endian;
            for (p, b) in positions.iter_mut().zip(self.buffer.chunks_exact(4)) {
                let b: [u8; 4] = b.try_into().unwrap();
                p[axis] = (if big { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) }) as f64;
            }
        }
        Ok(cell)
    }
}

/// Cell lengths and angles (degrees) from a DCD unit-cell record [a, γ, b, β, α, c]. CHARMM and
/// NAMD write the angles' cosines, others degrees; like VMD's reader, values within [-1, 1] are
/// taken as cosines (90° - asin keeps right angles exact).
pub fn cell_lengths_angles(record: [f64; 6]) -> (Vec3, Vec3) {
    let [a, gamma, b, beta, alpha, c] = record;
    let cosines = [alpha, beta, gamma].iter().all(|v| v.abs() <= 1.0);
    let angle = |v: f64| if cosines { 90.0 - v.asin().to_degrees() } else { v };
    ([a, b, c], [angle(alpha), angle(beta), angle(gamma)])
}
