//! Hostile and clumsy input, through the `mdrun` binary as a user would meet it: a table of
//! cases, each with its files, its command line, the exit code it must end with and what its
//! message must say. Every case must end within a minute, without a panic or an abort, print
//! its error once (no cause repeated), and leave the user's input files as they were.
//! Then the signals a batch scheduler or a dropped ssh session sends, and a restart after a
//! crash that left half a row and half a frame behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MDRUN: &str = env!("CARGO_BIN_EXE_mdrun");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const TWO: &str = "2\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 1 1 1\nAr 4.5 1 1\n";

/// Argon with Lennard-Jones, `structure` as the file, `extra` appended (more tables or keys).
fn argon(structure: &str, extra: &str) -> String {
    format!(
        r#"[structure]
file = "{structure}"

[potential]
type = "lj"
cutoff = "8.5 A"
[potential.species.Ar]
epsilon = "0.0103 eV"
sigma = "3.405 A"

[integrator]
type = "verlet"
timestep = "2 fs"

[run]
steps = 10
{extra}"#
    )
}

/// LAMMPS's LJ melt, small.
const DECK: &str = "units lj\natom_style atomic\nlattice fcc 0.8442\nregion box block 0 3 0 3 0 3\ncreate_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\nvelocity all create 3.0 87287 loop geom\npair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\nfix 1 all nve\nthermo 5\nrun 10\n";

/// Bytes that are no text at all (a fixed pseudo-random stream with 0xff and NULs).
fn noise() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
}

fn wait(mut child: Child, limit: Duration) -> Ended {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return Ended {
                code: status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                seconds: start.elapsed().as_secs_f64(),
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("hung: no exit after {limit:?}\nstdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(dir: &Path, args: &[String]) -> Child {
    Command::new(MDRUN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn mdrun(dir: &Path, args: &[String]) -> Ended {
    wait(spawn(dir, args), Duration::from_secs(120))
}

enum Content {
    Text(String),
    Bytes(Vec<u8>),
    Folder,
    /// A copy of the shipped water SchNet model with one edit to its card.
    ModelCard(fn(&mut serde_json::Value)),
}

struct Case {
    name: &'static str,
    files: Vec<(&'static str, Content)>,
    /// Commands that must succeed first (a run to restart from).
    before: Vec<Vec<String>>,
    /// Files rewritten after `before` (a changed input for the restart).
    then: Vec<(&'static str, String)>,
    args: Vec<String>,
    code: i32,
    /// What stdout and stderr together must hold.
    says: Vec<&'static str>,
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(|w| w.replace("{root}", ROOT)).collect()
}

fn case(name: &'static str, files: Vec<(&'static str, Content)>, args: &str, code: i32, says: &[&'static str]) -> Case {
    Case { name, files, before: Vec::new(), then: Vec::new(), args: words(args), code, says: says.to_vec() }
}

fn text(s: impl Into<String>) -> Content {
    Content::Text(s.into())
}

fn cases() -> Vec<Case> {
    let water_data = format!("{ROOT}/potentials/data/water.extxyz");
    let nan_data = {
        let frame = std::fs::read_to_string(&water_data).unwrap();
        let lines: Vec<&str> = frame.lines().take(26 * 3).collect();
        lines.join("\n").replacen("energy=-1103.9203247242", "energy=nan", 1) + "\n"
    };
    let repeated_log = "# 2 atoms: 2 Ar\nStep Time(ps) Temp(K) PotEng(eV) KinEng(eV) TotEng(eV) Press(bar) Volume(A3)\n0 0 1 -1 0 -1 0 8000\n10 0.02 1 -1 0 -1 0 8000\n20 0.04 1 -1 0 -1 0 8000\n10 0.02 1 -1 0 -1 0 8000\n20 0.04 1 -1 0 -1 0 8000\n30 0.06 1 -1 0 -1 0 8000\n";
    let pdb = "HETATM    1 AR   AR  A   1       1.000   1.000   1.000  1.00  0.00          AR\nHETATM    2 AR   AR  A   1       4.500   1.000   1.000  1.00  0.00          AR\nEND\n";
    let mut restart_steps = case(
        "--steps below the checkpoint's step",
        vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "")))],
        "system.toml --restart checkpoint.chk --steps 5",
        1,
        &["checkpoint.chk", "is at step 10", "past the last step 5", "--steps"],
    );
    restart_steps.before = vec![words("system.toml")];
    let mut restart_masses = case(
        "[masses] changed on restart",
        vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "")))],
        "system.toml --restart checkpoint.chk --steps 20",
        1,
        &["checkpoint.chk", "mass 39.948", "40.5", "same system"],
    );
    restart_masses.before = vec![words("system.toml")];
    restart_masses.then = vec![("system.toml", argon("two.xyz", "[masses]\nAr = 40.5\n"))];
    vec![
        // 1. Random bytes in a file chemfiles reads as text: every command that reads one.
        case("random bytes as the structure (run)", vec![("noise.xyz", Content::Bytes(noise())), ("system.toml", text(argon("noise.xyz", "")))], "system.toml", 1, &["noise.xyz", "not UTF-8"]),
        case("random bytes as a trajectory (analyze)", vec![("noise.xyz", Content::Bytes(noise()))], "analyze noise.xyz", 1, &["noise.xyz", "not UTF-8"]),
        case("random bytes as data (eval)", vec![("noise.xyz", Content::Bytes(noise()))], "eval {root}/potentials/water-schnet noise.xyz", 1, &["noise.xyz", "not UTF-8"]),
        case("random bytes as data (train)", vec![("noise.xyz", Content::Bytes(noise()))], "train --train noise.xyz --out model --epochs 1", 1, &["noise.xyz", "not UTF-8"]),
        // Found by fuzzing: chemfiles' extended XYZ comment parser never returns on these.
        case("a comment line that hangs chemfiles (run)", vec![("hang.xyz", text("2\nLattice =\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3\nAr 1 1 1\nAr 4.5 1 1\n")), ("system.toml", text(argon("hang.xyz", "")))], "system.toml", 1, &["hang.xyz", "line 2", "'=' where a key should start"]),
        case("a comment line that hangs chemfiles (analyze)", vec![("hang.xyz", text("1\nProperties=species:S:1:pos:R:3 time =0\nAr 1 1 1\n"))], "analyze hang.xyz", 1, &["hang.xyz", "line 2", "'=' where a key should start"]),
        case("Properties= with 40 million columns", vec![("big.extxyz", text("1\nProperties=species:S:1:pos:R:3:forces:R:39834403 energy=1\nH 0 0 0 1 1 1\n"))], "train --train big.extxyz --out model", 1, &["big.extxyz", "line 2", "declares 39834407 columns"]),
        case("a stress of five numbers", vec![("s.extxyz", text("1\nLattice=\"9 0 0 0 9 0 0 0 9\" pbc=\"T T T\" energy=1 stress=\"1 2 3 4 5\" Properties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0 1 1 1\n"))], "eval {root}/potentials/water-schnet s.extxyz", 1, &["s.extxyz", "frame 0", "stress= has 5 numbers", "expected 9"]),
        case("a stress on an open structure", vec![("s.extxyz", text("1\nenergy=1 stress=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3:forces:R:3\nH 0 0 0 1 1 1\n"))], "eval {root}/potentials/water-schnet s.extxyz", 1, &["s.extxyz", "stress=", "not periodic along all three axes"]),
        case("a PDB CONECT before any atom (chemfiles crashes)", vec![("c.pdb", text("REMARK x\nCONECT\nEND\n"))], "analyze c.pdb", 1, &["c.pdb", "line 2", "CONECT record before any ATOM"]),
        // 2. Open boundaries with a zero extent along some axis.
        case("one atom, open boundaries", vec![("one.xyz", text("1\n\nAr 0 0 0\n")), ("system.toml", text(argon("one.xyz", "")))], "system.toml", 0, &["1 atoms", "no cell"]),
        case("two atoms on a line, open", vec![("line.xyz", text("2\n\nAr 0 0 0\nAr 3.8 0 0\n")), ("system.toml", text(argon("line.xyz", "")))], "system.toml", 0, &["2 atoms"]),
        case("a planar set, open", vec![("flat.xyz", text("4\n\nAr 0 0 0\nAr 3.8 0 0\nAr 0 3.8 0\nAr 3.8 3.8 0\n")), ("system.toml", text(argon("flat.xyz", "")))], "system.toml", 0, &["4 atoms"]),
        // 5. Outputs onto inputs or onto each other.
        case("log = the structure file", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "[output]\nlog = \"two.xyz\"\n")))], "system.toml", 1, &["[output] log", "two.xyz", "is the structure file"]),
        case("checkpoint = the TOML", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "[output]\ncheckpoint = \"system.toml\"\n")))], "system.toml", 1, &["[output] checkpoint", "is the input file"]),
        case("two trajectories, one path", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "[[output.trajectory]]\npath = \"t.xyz\"\ninterval = 1\n[[output.trajectory]]\npath = \"./t.xyz\"\ninterval = 2\n")))], "system.toml", 1, &["t.xyz", "is also [[output.trajectory]] path"]),
        case("trajectory = the log", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "[output]\nlog = \"out.xyz\"\n[[output.trajectory]]\npath = \"out.xyz\"\ninterval = 1\n")))], "system.toml", 1, &["is also [output] log"]),
        case("a checkpoint path that is a folder", vec![("two.xyz", text(TWO)), ("final.chk", Content::Folder), ("system.toml", text(argon("two.xyz", "[output]\ncheckpoint = \"final.chk\"\n")))], "system.toml", 1, &["[output] checkpoint", "final.chk", "is a folder"]),
        case("--summary onto the structure", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "")))], "system.toml --summary two.xyz", 1, &["--summary", "is the structure file"]),
        // 6. Model cards out of range.
        case("model card: negative cutoff", vec![("model", Content::ModelCard(|c| c["config"]["cutoff"] = (-5.0).into()))], &format!("eval model {water_data}"), 1, &["model.json", "config.cutoff = -5"]),
        case("model card: huge cutoff", vec![("model", Content::ModelCard(|c| c["config"]["cutoff"] = 1e9.into()))], &format!("eval model {water_data}"), 1, &["config.cutoff = 1000000000"]),
        case("model card: short reference energies", vec![("model", Content::ModelCard(|c| { c["normalization"]["reference_energies"].as_array_mut().unwrap().pop(); }))], &format!("eval model {water_data}"), 1, &["reference_energies has 1 values for 2 species"]),
        case("model card: huge network", vec![("model", Content::ModelCard(|c| c["config"]["features"] = 100000.into()))], &format!("eval model {water_data}"), 1, &["config.features = 100000"]),
        // 7. Resource requests.
        case("repeat = [1000, 1000, 1000]", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "").replace("file = \"two.xyz\"", "file = \"two.xyz\"\nrepeat = [1000, 1000, 1000]")))], "system.toml", 1, &["system.toml:3", "[structure] repeat", "2000000000 atoms"]),
        case("a lattice of 10^12 cells", vec![("system.toml", text(argon("x", "").replace("file = \"x\"", "lattice = \"fcc\"\nlattice_constant = \"5.26 A\"\nelement = \"Ar\"\nrepeat = [10000, 10000, 10000]")))], "system.toml", 1, &["[structure] repeat", "4000000000000 atoms"]),
        case("--threads 100000", vec![("two.xyz", text(TWO)), ("system.toml", text(argon("two.xyz", "")))], "system.toml --threads 100000", 1, &["100000 threads", "more than the"]),
        case("train --batch-size 0", vec![], &format!("train --train {water_data} --out model --batch-size 0"), 1, &["--batch-size 0"]),
        case("train --out naming a file", vec![("model", text("not a folder"))], &format!("train --train {water_data} --out model --epochs 1"), 1, &["--out", "is a file"]),
        // 8. A NaN label.
        case("train on a NaN energy", vec![("nan.extxyz", text(nan_data))], "train --train nan.extxyz --out model --epochs 1", 1, &["nan.extxyz", "frame 0", "not a finite number"]),
        case("a training that diverges", vec![], &format!("train --train {water_data} --out model --features 8 --blocks 1 --rbf 4 --epochs 3 --learning-rate 1e30"), 1, &["diverged at epoch 1", "nothing to save"]),
        // 9. Repeated thermo rows.
        case("analyze a log with repeated steps", vec![("thermo.log", text(repeated_log))], "analyze thermo.log", 1, &["thermo.log:6", "step 10 does not come after step 20"]),
        case("analyze a log with a NaN", vec![("thermo.log", text(repeated_log.replace("\n10 0.02 1 -1 0 -1 0 8000\n20", "\n10 0.02 nan -1 0 -1 0 8000\n20")))], "analyze thermo.log", 1, &["thermo.log:4", "Temp(K) is NaN"]),
        // LAMMPS decks: no output over a script of the deck.
        case("-log onto the deck", vec![("in.lj", text(DECK))], "-in in.lj -log in.lj", 1, &["-log in.lj is the input deck"]),
        case("dump onto the deck", vec![("in.lj", text(DECK.replace("run 10", "dump 1 all atom 10 in.lj\nrun 10")))], "-in in.lj -log none", 1, &["in.lj", "dump would write in.lj, a script of this deck"]),
        case("convert --state onto the deck", vec![("in.lj", text(DECK))], "convert in.lj --state in.lj", 1, &["--state in.lj is a script of the deck"]),
        case("a deck that writes ordinary outputs", vec![("in.lj", text(DECK.replace("run 10", "dump 1 all atom 10 dump.atom\nrun 10\nwrite_data data.out")))], "-in in.lj -log none", 0, &["Loop time"]),
        case("analyze --dt nan", vec![("t.xyz", text("1\n\nAr 0 0 0\n1\n\nAr 0.1 0 0\n1\n\nAr 0.2 0 0\n"))], "analyze t.xyz --msd --dt nan --no-plots", 1, &["--dt NaN: expected a positive time"]),
        // The weak ones.
        case("PDB element column in capitals", vec![("two.pdb", text(pdb)), ("system.toml", text(argon("two.pdb", "")))], "system.toml", 0, &["2 Ar"]),
        case("extended XYZ Lattice= without Properties=", vec![("two.xyz", text("2\nLattice=\"20 0 0 0 20 0 0 0 20\"\nAr 1 1 1\nAr 4.5 1 1\n")), ("system.toml", text(argon("two.xyz", "")))], "system.toml", 0, &["cell 20.0000 x 20.0000 x 20.0000"]),
        restart_steps,
        restart_masses,
    ]
}

/// "a: b: b" — a cause printed again after the message that already holds it.
fn repeated_part(line: &str) -> Option<String> {
    let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() >= 12).collect();
    parts.iter().find(|p| line.matches(**p).count() > 1).map(|p| p.to_string())
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_file() {
            out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_inputs_end_with_the_expected_code_and_message() {
    let mut failures = Vec::new();
    println!("{:<45} {:>5} {:>6}  message", "case", "exit", "s");
    for (k, c) in cases().into_iter().enumerate() {
        let dir = common::scratch(&format!("hostile-{k}"));
        for (name, content) in &c.files {
            let path = dir.join(name);
            match content {
                Content::Text(t) => std::fs::write(&path, t).unwrap(),
                Content::Bytes(b) => std::fs::write(&path, b).unwrap(),
                Content::Folder => std::fs::create_dir_all(&path).unwrap(),
                Content::ModelCard(edit) => {
                    std::fs::create_dir_all(&path).unwrap();
                    let source = Path::new(ROOT).join("potentials/water-schnet");
                    std::fs::copy(source.join("model.safetensors"), path.join("model.safetensors")).unwrap();
                    let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(source.join("model.json")).unwrap()).unwrap();
                    edit(&mut card);
                    std::fs::write(path.join("model.json"), card.to_string()).unwrap();
                }
            }
        }
        for args in &c.before {
            let e = mdrun(&dir, args);
            assert_eq!(e.code, Some(0), "{}: setup run failed: {}", c.name, e.stderr);
        }
        for (name, t) in &c.then {
            std::fs::write(dir.join(name), t).unwrap();
        }
        let inputs = snapshot(&dir);
        let e = mdrun(&dir, &c.args);
        let all = format!("{}{}", e.stdout, e.stderr);
        let error_line = e.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or("").to_string();
        println!("{:<45} {:>5} {:>6.2}  {}", c.name, e.code.map_or("-".into(), |x| x.to_string()), e.seconds, error_line);
        let mut problems = Vec::new();
        if e.code != Some(c.code) {
            problems.push(format!("exit {:?}, expected {}", e.code, c.code));
        }
        for part in &c.says {
            if !all.contains(part) {
                problems.push(format!("does not say {part:?}"));
            }
        }
        if all.contains("panicked") || all.contains("RUST_BACKTRACE") {
            problems.push("panicked".into());
        }
        if let Some(p) = repeated_part(&error_line) {
            problems.push(format!("prints {p:?} twice"));
        }
        for (path, before) in &inputs {
            if std::fs::read(path).ok().as_ref() != Some(before) {
                problems.push(format!("changed the input {}", path.display()));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n  stdout: {}\n  stderr: {}", c.name, problems.join("; "), e.stdout.trim(), e.stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// A long argon run (864 atoms, NVE) with frequent output, for signals and crashes.
fn long_argon(dir: &Path, steps: u64, extra: &str) {
    std::fs::copy(Path::new(ROOT).join("systems/argon/argon.extxyz"), dir.join("argon.extxyz")).unwrap();
    let toml = std::fs::read_to_string(Path::new(ROOT).join("systems/argon/system.toml"))
        .unwrap()
        .replace("steps = 10000", &format!("steps = {steps}"))
        .replace("thermo = 500", "thermo = 5")
        .replace("checkpoint_interval = 5000", "checkpoint_interval = 20")
        .replace("interval = 500", "interval = 5")
        + extra;
    std::fs::write(dir.join("system.toml"), toml).unwrap();
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_save_a_checkpoint_and_say_how_to_continue() {
    for (name, signal) in [("SIGTERM", libc::SIGTERM), ("SIGHUP", libc::SIGHUP), ("SIGINT", libc::SIGINT)] {
        let dir = common::scratch(&format!("signal-{name}"));
        long_argon(&dir, 1_000_000, "");
        let child = spawn(&dir, &words("system.toml --threads 1"));
        // Signal once the run is stepping (its thermo log has rows).
        let log = dir.join("out/thermo.log");
        let start = Instant::now();
        while common_rows(&log) < 3 {
            assert!(start.elapsed() < Duration::from_secs(60), "{name}: the run did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let e = wait(child, Duration::from_secs(60));
        println!("{name}: exit {:?}, {}", e.code, e.stderr.lines().last().unwrap_or(""));
        assert_eq!(e.code, Some(130), "{name}: {}", e.stderr);
        assert!(e.stderr.contains("continue with --restart"), "{name}: {}", e.stderr);
        let chk = mdrun::io::checkpoint::Checkpoint::read(&dir.join("out/final.chk")).unwrap();
        assert!(chk.step > 0, "{name}: checkpoint at step {}", chk.step);
        // And the run continues from it.
        let again = mdrun(&dir, &words(&format!("system.toml --threads 1 --restart out/final.chk --steps {}", chk.step + 10)));
        assert_eq!(again.code, Some(0), "{name}: restart: {}", again.stderr);
    }
}

fn common_rows(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |t| t.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).count())
}

/// A run killed after its checkpoint at step 20, having written rows and frames to step 30 and
/// half of the next ones: `--restart` cuts the log and the trajectory back to step 20, and the
/// continued files equal those of a run that never stopped.
#[test]
fn a_restart_after_a_crash_cuts_the_outputs_back_to_the_checkpoint() {
    // A second trajectory in a binary format: cut back by rewriting its frames.
    let dcd = "\n[[output.trajectory]]\npath = \"out/trajectory.dcd\"\ninterval = 5\n";
    let whole = common::scratch("crash-whole");
    long_argon(&whole, 40, dcd);
    assert_eq!(mdrun(&whole, &words("system.toml --threads 1")).code, Some(0));

    let crashed = common::scratch("crash-cut");
    long_argon(&crashed, 40, dcd);
    let run = |args: &str| {
        let e = mdrun(&crashed, &words(args));
        assert_eq!(e.code, Some(0), "{args}: {}", e.stderr);
        e
    };
    run("system.toml --threads 1 --steps 20");
    std::fs::copy(crashed.join("out/final.chk"), crashed.join("at20.chk")).unwrap();
    run("system.toml --threads 1 --restart out/final.chk --steps 30");
    // The crash: half a row and half a frame written, then killed; the checkpoint is step 20's.
    let append = |path: &Path, text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    };
    append(&crashed.join("out/thermo.log"), "35 0.175 94.1");
    append(&crashed.join("out/trajectory.xyz"), "864\ntime=0.175\nAr 1.0 2.0");
    std::fs::copy(crashed.join("at20.chk"), crashed.join("out/final.chk")).unwrap();
    let e = run("system.toml --threads 1 --restart out/final.chk");
    assert!(e.stderr.contains("cut back to the checkpoint's step 20"), "{}", e.stderr);

    assert_eq!(common::thermo_rows(&crashed.join("out/thermo.log")), common::thermo_rows(&whole.join("out/thermo.log")));
    let trajectory = |dir: &Path| std::fs::read(dir.join("out/trajectory.xyz")).unwrap();
    assert!(trajectory(&crashed) == trajectory(&whole), "the continued trajectory differs from the uninterrupted one");
    let frames = |dir: &Path| -> Vec<Vec<[f64; 3]>> {
        let mut t = chemfiles::Trajectory::open(dir.join("out/trajectory.dcd"), 'r').unwrap();
        let mut frame = chemfiles::Frame::new();
        (0..t.nsteps()).map(|_| { t.read(&mut frame).unwrap(); frame.positions().to_vec() }).collect()
    };
    let (cut, uninterrupted) = (frames(&crashed), frames(&whole));
    assert_eq!(cut.len(), 9, "DCD frames at steps 0, 5, ..., 40");
    assert!(cut == uninterrupted, "the continued DCD trajectory differs from the uninterrupted one");
    // And the continued log reads as one run.
    let e = mdrun(&crashed, &words("analyze out/thermo.log --no-plots --quiet"));
    assert_eq!(e.code, Some(0), "{}", e.stderr);
}

/// A training stopped by SIGTERM writes the best model so far (loadable) and exits with 130.
#[cfg(unix)]
#[test]
fn a_signal_stops_training_after_the_epoch_and_keeps_the_best_model() {
    use std::io::BufRead;
    let dir = common::scratch("train-signal");
    let data = format!("{ROOT}/potentials/data/water.extxyz");
    let mut child = Command::new(MDRUN)
        .args(words(&format!("train --train {data} --out model --features 8 --blocks 1 --rbf 4 --epochs 100000 --patience 100000")))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the second epoch's row, then signal.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.split_whitespace().next() == Some("2") {
                let _ = tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("no second epoch within two minutes");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let e = wait(child, Duration::from_secs(120));
    let stdout = reader.join().unwrap();
    println!("{}\n{}", stdout.lines().last().unwrap_or(""), e.stderr);
    assert_eq!(e.code, Some(130), "{}", e.stderr);
    assert!(e.stderr.contains("interrupted after epoch") && e.stderr.contains("best model so far"), "{}", e.stderr);
    mdrun::potential::mcgm::MlPotential::load(&dir.join("model"), &["O".to_string(), "H".to_string()]).expect("the written model loads");
}
